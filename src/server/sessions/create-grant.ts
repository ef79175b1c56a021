/**
 * CreateGrant: a parent, over mTLS with its session SVID, hands part of its session to a named child. The
 * parent signs the DelegationBinding itself with its SVID key (the server never holds that key, so it cannot
 * alter what the parent granted); the server checks the signature and every rule the verifier will check
 * later, refusing early with a distinct code, and stores the grant for single use.
 *
 * The parent may also bound how many further delegations the child may make below itself (max_depth; 0: none).
 * The signed binding has no room for it, so the server holds it: on the grant, then on the child's session as
 * its depth limit (RedeemGrant), which this call checks when the child grants in turn. It only narrows what the
 * parent may allow already.
 */
import {
  AgentContextError,
  DelegateNotAllowedError,
  DelegationTooDeepError,
  ErrorCode,
  GrantBindingInvalidError,
  GrantExpiredError,
  GrantReplayedError,
  InvalidArgumentError,
  isLanyardError,
  LifetimeEscalationError,
  ScopeEscalationError,
  SessionError,
} from '../../errors';
import type { CreateGrantRequest, CreateGrantResponse } from '../../gen/lanyard/v1/session';
import { SpiffeId } from '../../spiffe';
import { decodeDelegationBinding, delegationLinkSha256 } from '../../x509/agent-context/codec';
import { AGENT_CONTEXT_LIMITS, type DelegationBinding } from '../../x509/agent-context/types';
import { publicKeyFromSpki, verifyWithKey } from '../../x509/keys';
import { auditedTransaction } from '../audit/in-transaction';
import type { PeerCall } from '../tls/peer-svid';
import { resolveCaller, type ResolvedCaller } from '../auth/resolve-caller';
import type { SessionDeps } from './deps';

/** A grant must be redeemed within this long of its creation: it is a handoff, not a standing permission. */
export const MAX_REDEEM_WINDOW_SECONDS = 60;

export async function createGrant(
  deps: SessionDeps,
  req: CreateGrantRequest,
  call: PeerCall,
): Promise<CreateGrantResponse> {
  const now = deps.clock();
  const maxDepth = requestedMaxDepth(req);
  const caller = await resolveCaller(deps, call, 'session', now);
  const { session, entry } = caller;
  const binding = checkedBinding(req, caller);
  const leaf = caller.peer.chain[0]!;

  if (!entry.allowedDelegates.includes(binding.childId)) {
    throw new DelegateNotAllowedError(
      `${caller.id} may not delegate to ${binding.childId}: not in its entry's allowed_delegates`,
    );
  }
  const own = new Set(caller.context.scopes.filter((s) => session.scopes.includes(s)));
  const extra = binding.scopes.filter((s) => !own.has(s));
  if (extra.length > 0) {
    throw new ScopeEscalationError(
      `the grant asks for scopes ${extra.join(', ')} that the session of ${caller.id} does not hold`,
    );
  }
  const parentEnd = Math.min(leaf.notAfter.getTime(), session.expiresAt.getTime());
  if (binding.notAfter.getTime() > parentEnd) {
    throw new LifetimeEscalationError(
      `the grant lasts until ${binding.notAfter.toISOString()}, past the parent's end ${new Date(parentEnd).toISOString()}`,
    );
  }
  if (binding.notAfter.getTime() <= now.getTime()) {
    throw new GrantExpiredError('the grant ends before it could be redeemed');
  }
  const redeemWindow = binding.redeemBy.getTime() - now.getTime();
  if (redeemWindow <= 0 || redeemWindow > MAX_REDEEM_WINDOW_SECONDS * 1000) {
    throw new GrantBindingInvalidError(
      `redeemBy must be in the future and at most ${MAX_REDEEM_WINDOW_SECONDS} s ahead`,
    );
  }
  const depth = caller.context.delegation.length + 1;
  // The smaller of the limits of every delegator so far and of this entry's own (further hops from here).
  const limit = Math.min(
    session.depthLimit,
    session.depth + entry.maxDelegationDepth,
    AGENT_CONTEXT_LIMITS.maxDelegationDepth,
  );
  if (depth > limit) {
    throw new DelegationTooDeepError(
      `delegating from ${caller.id} would make a chain of ${depth} hops; at most ${limit} are allowed here`,
    );
  }
  // What the parent may let the child delegate further; a bound asked for may narrow it, never widen it.
  const allowed = limit - depth;
  if (maxDepth !== undefined) {
    if (maxDepth > allowed) {
      throw new DelegationTooDeepError(
        `the grant asks that ${binding.childId} may delegate ${maxDepth} hops further; from ${caller.id} at most ${allowed} are allowed`,
      );
    }
    // The bound lives on this server's grant and session rows; a federated child's server never sees them, and
    // nothing it is handed unsigned binds it. Refused rather than granted unbounded.
    if (!SpiffeId.parse(binding.childId).trustDomain.equals(deps.ca.serverSvid().id.trustDomain)) {
      throw new InvalidArgumentError(
        `max_depth cannot bind ${binding.childId}: a child of another trust domain redeems at its own server, which the bound does not reach`,
      );
    }
  }

  // A grant is addressed to one child key, so the key names it: the child knows its grant's id before it exists,
  // and a key is granted once (a second grant for it, or a replayed binding, is refused below).
  const id = Buffer.from(binding.childKeySha256).toString('hex');
  try {
    // The grant and its audit record commit together.
    return await auditedTransaction(deps.store, async (tx): Promise<CreateGrantResponse> => {
      const grant = await tx.createGrant({
        id,
        parentSessionId: session.id,
        childSpiffeId: binding.childId,
        scopes: [...binding.scopes],
        notAfter: binding.notAfter,
        redeemBy: binding.redeemBy,
        bindingDer: Buffer.from(req.binding),
        signature: Buffer.from(req.signature),
        parentCertDer: Buffer.from(leaf.der),
        ...(maxDepth !== undefined ? { maxDepth } : {}),
      });
      return { grantId: grant.id, redeemBy: grant.redeemBy, maxDepth: maxDepth ?? allowed };
    });
  } catch (e) {
    if (isLanyardError(e) && e.code === ErrorCode.ALREADY_EXISTS) {
      throw new GrantReplayedError(
        'a grant for this child key exists already: the child offers a fresh key for every grant',
      );
    }
    throw e;
  }
}

/** The request's bound on the child's further delegations; undefined when the parent set none. */
function requestedMaxDepth(req: CreateGrantRequest): number | undefined {
  const d = req.maxDepth;
  if (d === undefined) return undefined;
  if (!Number.isInteger(d) || d < 0) {
    throw new InvalidArgumentError(
      `max_depth must be an integer >= 0 (0: the child may not delegate), got ${d}`,
    );
  }
  return d;
}

/**
 * Decodes the binding and checks that it is the caller's: signed by the key of the certificate it presents,
 * naming that certificate, the chain's root session and principal, and the caller's last link.
 */
function checkedBinding(req: CreateGrantRequest, caller: ResolvedCaller): DelegationBinding {
  let binding: DelegationBinding;
  try {
    binding = decodeDelegationBinding(req.binding);
  } catch (e) {
    if (e instanceof AgentContextError) {
      throw new GrantBindingInvalidError(`binding: ${e.message}`, { cause: e });
    }
    throw e;
  }
  const leaf = caller.peer.chain[0]!;
  const invalid = (why: string): SessionError => new GrantBindingInvalidError(why);
  if (!verifyWithKey(req.binding, req.signature, publicKeyFromSpki(leaf.spkiDer))) {
    throw invalid('the signature over the binding is not by the key of the client certificate');
  }
  if (!Buffer.from(binding.parentCertSha256).equals(Buffer.from(leaf.sha256))) {
    throw invalid('the binding names another parent certificate than the one presented');
  }
  const ctx = caller.context;
  if (
    binding.rootSessionId !== ctx.rootSessionId ||
    binding.principalId !== ctx.principal.id ||
    binding.principalIssuer !== ctx.principal.issuer ||
    binding.principalProvenance !== ctx.principal.provenance
  ) {
    throw invalid("the binding's root session or principal is not the caller's");
  }
  const last = ctx.delegation[ctx.delegation.length - 1];
  const prev = last === undefined ? new Uint8Array(0) : delegationLinkSha256(last);
  if (!Buffer.from(binding.prevLinkSha256).equals(Buffer.from(prev))) {
    throw invalid("the binding does not refer to the caller's last delegation link");
  }
  return binding;
}
