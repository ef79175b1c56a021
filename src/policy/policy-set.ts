/**
 * One loaded, validated policy set and its version: evaluation never mixes two versions, so a caller that
 * takes a snapshot (say, for every scope of one SVID) gets decisions and a version that belong together.
 *
 * Deny by default (Cedar: nothing permits), and fail closed: a Cedar failure, an exception, or an error in
 * any policy during evaluation makes the decision deny. Cedar itself skips a policy that errors, which would
 * let a request through when the erroring policy was a forbid.
 */
import { createHash } from 'node:crypto';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { CompiledPolicySet } from './compile';
import { type PolicySubject, workloadEntity, workloadUid } from './entities';
import {
  ACTION_TYPE,
  CALL_ACTION,
  ISSUE_ACTION,
  type IssuanceKind,
  LANYARD_CEDAR_SCHEMA,
  SCOPE_TYPE,
  SERVICE_TYPE,
} from './schema';

export interface PolicyDecision {
  decision: 'allow' | 'deny';
  /** Ids of the policies that determined the decision (the permits for allow, the forbids for deny). */
  reasons: string[];
  /** Errors during evaluation; any makes the decision deny. */
  errors: string[];
  policyVersion: string;
}

/** A request at a hop. */
export interface CallRequest {
  peer: PolicySubject;
  /** gRPC method path (`/pkg.Service/Method`) or `METHOD /route`. */
  action: string;
  /** The service deciding: its SPIFFE ID or configured name. */
  service: string;
  /** `grpc`, `http`, `tls`; default `tls`. */
  transport?: string;
}

/** Whether `scope` may go into an SVID for `subject` (the SVID as it would be issued). */
export interface IssueRequest {
  subject: PolicySubject;
  scope: string;
  kind: IssuanceKind;
}

// The schema is the same for every policy set in the process: parse it once into Cedar's cache.
const SCHEMA_NAME = 'lanyard-v1';
let schemaReady = false;

export class PolicySet {
  readonly version: string;
  readonly compiled: CompiledPolicySet;
  private readonly cacheId: string;

  constructor(compiled: CompiledPolicySet) {
    this.compiled = compiled;
    this.version = compiled.version;
    if (!schemaReady) {
      const s = cedar.preparseSchema(SCHEMA_NAME, LANYARD_CEDAR_SCHEMA);
      if (s.type === 'failure')
        throw new Error(`the built-in Lanyard schema does not parse: ${s.errors[0]?.message}`);
      schemaReady = true;
    }
    // Cedar's preparsed sets live in a process-wide cache keyed by id; the full hash of the policies keys it, so
    // two engines with the same policies share an entry and different policies never collide.
    this.cacheId = `lanyard:${createHash('sha256').update(JSON.stringify(compiled.policies)).digest('hex')}`;
    const p = cedar.preparsePolicySet(this.cacheId, { staticPolicies: { ...compiled.policies } });
    if (p.type === 'failure')
      throw new Error(`a validated policy set does not parse: ${p.errors[0]?.message}`);
  }

  evaluateCall(req: CallRequest): PolicyDecision {
    return this.authorize(
      req.peer,
      { type: ACTION_TYPE, id: CALL_ACTION },
      { type: SERVICE_TYPE, id: req.service },
      { transport: req.transport ?? 'tls', operation: req.action },
    );
  }

  evaluateIssue(req: IssueRequest): PolicyDecision {
    return this.authorize(
      req.subject,
      { type: ACTION_TYPE, id: ISSUE_ACTION },
      { type: SCOPE_TYPE, id: req.scope },
      { kind: req.kind },
    );
  }

  /** The scopes among `scopes` that the policy permits for `subject`, in their order. */
  permittedScopes(subject: PolicySubject, scopes: readonly string[], kind: IssuanceKind): string[] {
    return scopes.filter((scope) => this.evaluateIssue({ subject, scope, kind }).decision === 'allow');
  }

  private authorize(
    subject: PolicySubject,
    action: cedar.TypeAndId,
    resource: cedar.TypeAndId,
    context: cedar.Context,
  ): PolicyDecision {
    const deny = (errors: string[]): PolicyDecision => ({
      decision: 'deny',
      reasons: [],
      errors,
      policyVersion: this.version,
    });
    let answer: cedar.AuthorizationAnswer;
    try {
      answer = cedar.statefulIsAuthorized({
        principal: workloadUid(subject),
        action,
        resource,
        context,
        preparsedSchemaName: SCHEMA_NAME,
        validateRequest: true,
        preparsedPolicySetId: this.cacheId,
        entities: [workloadEntity(subject)],
      });
    } catch (e) {
      return deny([`evaluation failed: ${e instanceof Error ? e.message : String(e)}`]);
    }
    if (answer.type === 'failure') return deny(answer.errors.map((e) => e.message));
    const { decision, diagnostics } = answer.response;
    const errors = diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`);
    if (errors.length > 0) return { ...deny(errors), reasons: [...diagnostics.reason] };
    return { decision, reasons: [...diagnostics.reason], errors: [], policyVersion: this.version };
  }
}
