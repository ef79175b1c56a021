/**
 * One loaded, validated policy set and its version: evaluation never mixes two versions, so a caller that
 * takes a snapshot (say, for every scope of one SVID) gets decisions and a version that belong together.
 *
 * Deny by default (Cedar: nothing permits), and fail closed: a Cedar failure, an exception, or an error in
 * any policy during evaluation makes the decision deny. Cedar itself skips a policy that errors, which would
 * let a request through when the erroring policy was a forbid.
 */
import { createHash } from 'node:crypto';
import type * as CedarTypes from '@cedar-policy/cedar-wasm/nodejs';
import { cedar } from './cedar';
import { Lru } from '../internal/lru';
import type { CompiledPolicySet } from './compile';
import { type PolicySubject, workloadEntity, workloadUid } from './entities';
import {
  ACTION_TYPE,
  CALL_ACTION,
  ISSUE_ACTION,
  type IssuanceKind,
  SCOPE_TYPE,
  SERVICE_TYPE,
} from './schema';

export interface CedarDecision {
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

/** One Cedar request with the entities it needs: what `PolicySet` evaluates, built in the schema's shape. */
export interface CedarRequest {
  principal: CedarTypes.TypeAndId;
  action: CedarTypes.TypeAndId;
  resource: CedarTypes.TypeAndId;
  context: CedarTypes.Context;
  entities: CedarTypes.EntityJson[];
}

export function callRequest(req: CallRequest): CedarRequest {
  return {
    principal: workloadUid(req.peer),
    action: { type: ACTION_TYPE, id: CALL_ACTION },
    resource: { type: SERVICE_TYPE, id: req.service },
    context: { transport: req.transport ?? 'tls', operation: req.action },
    entities: [workloadEntity(req.peer)],
  };
}

export function issueRequest(req: IssueRequest): CedarRequest {
  return {
    principal: workloadUid(req.subject),
    action: { type: ACTION_TYPE, id: ISSUE_ACTION },
    resource: { type: SCOPE_TYPE, id: req.scope },
    context: { kind: req.kind },
    entities: [workloadEntity(req.subject)],
  };
}

/*
 * Evaluation runs without the schema. The policies were validated against it in strict mode when they were
 * loaded, and requests are built only by the two functions above, in exactly the schema's shape (a test
 * validates what they build against it); having Cedar re-validate every request and its entity costs about
 * ten times the decision itself.
 */
/** Decisions remembered per policy set; 0 turns the cache off. */
export const DEFAULT_DECISION_CACHE_SIZE = 4096;

export interface PolicySetOptions {
  /** Most decisions remembered (least recently used dropped first). Default 4096; 0 = none. */
  decisionCacheSize?: number;
}

export class PolicySet {
  readonly version: string;
  readonly compiled: CompiledPolicySet;
  private readonly cacheId: string;
  /*
   * A decision is a pure function of the policy set and the request (the peer's attributes come from its
   * immutable certificate; Cedar has no clock or I/O), so a set can remember them: the same peer calling the
   * same operation again costs a lookup. Keyed by the whole request, entity attributes included; a reload
   * makes a new set with an empty cache. Bounded, so endless distinct peers cannot grow memory.
   */
  private readonly decisions: Lru<CedarDecision> | undefined;

  constructor(compiled: CompiledPolicySet, options: PolicySetOptions = {}) {
    this.compiled = compiled;
    this.version = compiled.version;
    const size = options.decisionCacheSize ?? DEFAULT_DECISION_CACHE_SIZE;
    this.decisions = size > 0 ? new Lru<CedarDecision>(size) : undefined;
    // Cedar's preparsed sets live in a process-wide cache keyed by id; the full hash of the policies keys it, so
    // two engines with the same policies share an entry and different policies never collide.
    this.cacheId = `lanyard:${createHash('sha256').update(JSON.stringify(compiled.policies)).digest('hex')}`;
    const p = cedar().preparsePolicySet(this.cacheId, { staticPolicies: { ...compiled.policies } });
    if (p.type === 'failure')
      throw new Error(`a validated policy set does not parse: ${p.errors[0]?.message}`);
  }

  evaluateCall(req: CallRequest): CedarDecision {
    return this.authorize(callRequest(req));
  }

  evaluateIssue(req: IssueRequest): CedarDecision {
    return this.authorize(issueRequest(req));
  }

  /** The scopes among `scopes` that the policy permits for `subject`, in their order. */
  permittedScopes(subject: PolicySubject, scopes: readonly string[], kind: IssuanceKind): string[] {
    return scopes.filter((scope) => this.evaluateIssue({ subject, scope, kind }).decision === 'allow');
  }

  private authorize(request: CedarRequest): CedarDecision {
    if (this.decisions === undefined) return this.decide(request);
    const key = JSON.stringify(request);
    let d = this.decisions.get(key);
    if (d === undefined) {
      d = this.decide(request);
      // Only clean decisions: an error might not repeat (an exception inside the engine, say).
      if (d.errors.length === 0) this.decisions.set(key, d);
    }
    return { ...d, reasons: [...d.reasons], errors: [...d.errors] };
  }

  private decide(request: CedarRequest): CedarDecision {
    const deny = (errors: string[]): CedarDecision => ({
      decision: 'deny',
      reasons: [],
      errors,
      policyVersion: this.version,
    });
    let answer: CedarTypes.AuthorizationAnswer;
    try {
      answer = cedar().statefulIsAuthorized({ ...request, preparsedPolicySetId: this.cacheId });
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
