/**
 * The Cedar schema every Lanyard policy is validated against (strict mode), so a policy that names an
 * attribute or action that does not exist is refused when it is loaded, not silently never matched.
 *
 * Cedar requires every action to be declared in the schema, and the RPC methods and HTTP routes of the
 * services Lanyard protects are not known here. So a request at a hop is the one action `call`, and the
 * method path (`/pkg.Service/Method`) or route (`GET /path`) travels as `context.operation`; policies match it
 * with `==` or `like`. Issuance is the action `issue`, decided once per requested scope (the resource).
 */

export const CEDAR_NAMESPACE = 'Lanyard';
export const WORKLOAD_TYPE = `${CEDAR_NAMESPACE}::Workload`;
export const SERVICE_TYPE = `${CEDAR_NAMESPACE}::Service`;
export const SCOPE_TYPE = `${CEDAR_NAMESPACE}::Scope`;
export const ACTION_TYPE = `${CEDAR_NAMESPACE}::Action`;

/** A request at a hop: a peer calls an operation of a service. */
export const CALL_ACTION = 'call';
/** Issuance: a scope is put into an SVID the server signs. */
export const ISSUE_ACTION = 'issue';

/** What kind of SVID an `issue` request is for (`context.kind`). */
export type IssuanceKind = 'workload' | 'session' | 'delegation';

export const LANYARD_CEDAR_SCHEMA = `namespace ${CEDAR_NAMESPACE} {
  // A workload or agent run, as its SVID describes it. Every attribute is present: an SVID without an agent
  // context has hasAgentContext false and empty strings, so policies need no "has" checks.
  entity Workload = {
    spiffeId: String,
    trustDomain: String,
    path: String,
    hasAgentContext: Bool,
    agentId: String,
    sessionId: String,
    rootSessionId: String,
    rootPrincipal: String,
    rootPrincipalIssuer: String,
    principalProvenance: String,
    scopes: Set<String>,
    delegationDepth: Long,
    delegatedBy: Set<String>,
    intent: String,
  };
  // The service that decides at a hop (its SPIFFE ID, or the name the service was configured with).
  entity Service;
  // One scope an SVID may carry.
  entity Scope;

  action ${CALL_ACTION} appliesTo {
    principal: [Workload],
    resource: [Service],
    context: { transport: String, operation: String },
  };
  action ${ISSUE_ACTION} appliesTo {
    principal: [Workload],
    resource: [Scope],
    context: { kind: String },
  };
}
`;
