/**
 * RedeemGrant with a foreign grant: a parent of a federated trust domain delegated to one of our workloads. This
 * server holds nothing of the parent's (no session, no grant row), so everything it relies on is what the
 * parent's own domain vouches for and it can check offline:
 *  - the parent's session SVID chain, verified as an SVID of the parent's trust domain with that domain's
 *    federated bundle (never ours), its own agent context included;
 *  - the binding, signed by that SVID's key, naming that SVID, the caller, the CSR's key, the scopes (a subset of
 *    the parent's), an expiry (no later than the parent's), the parent's root session, principal and last link.
 * The delegated SVID's new link carries the parent's chain (parentChain, context version 2) so that every
 * verifier can check the same proof with the same bundle. Our CA vouches only for our workload and our session.
 *
 * The parent's domain cannot tell us when its session ends, so lifetime is the bound: the delegated session lasts
 * at most CROSS_DOMAIN_SESSION_MAX_SECONDS (and never past the grant or the parent's SVID); verifiers that watch
 * the parent domain's revocation feed refuse it at once (its query names the parent's session).
 */
import { sameBytes } from '../../internal/bytes';
import { sha256 } from '../../internal/digest';
import { BundleSet } from '../../bundle';
import {
  ContextForeignDomainError,
  DelegateNotAllowedError,
  DelegationTooDeepError,
  GrantBindingInvalidError,
  GrantExpiredError,
  GrantKeyMismatchError,
  GrantReplayedError,
  GrantWrongRedeemerError,
  InvalidArgumentError,
  isLanyardError,
  ErrorCode,
  LifetimeEscalationError,
  NotASessionError,
  ScopeEscalationError,
} from '../../errors';
import type { ForeignGrant, RedeemGrantResponse } from '../../gen/lanyard/v1/session';
import { SpiffeId } from '../../spiffe';
import { spiffeIdOfLeaf } from '../../svid/rules';
import { ParsedCertificate } from '../../x509/certificate';
import { verifyX509Svid } from '../../verify/verify-x509-svid';
import { decodeDelegationBinding, delegationLinkSha256 } from '../../x509/agent-context/codec';
import {
  AGENT_CONTEXT_LIMITS,
  AGENT_CONTEXT_VERSION_CROSS_DOMAIN,
  type AgentContext,
  type DelegationBinding,
} from '../../x509/agent-context/types';
import { AgentContextError } from '../../errors';
import { auditedSharedTransaction } from '../audit/in-transaction';
import type { PeerCall } from '../tls/peer-svid';
import type { SessionDeps } from './deps';
import { assertSessionQuota } from './quota';
import { delegatedDepthLimit, openDelegatedSession, resolveSessionOpener } from './session-opening';
import { MAX_REDEEM_WINDOW_SECONDS } from './create-grant';
import { signedParentLink } from './parent-link';

export const FOREIGN_DELEGATION_METHOD = 'delegation-foreign';

/**
 * Longest life of a session delegated from another trust domain: how long an ended parent session may still be
 * honoured by a verifier that does not watch the parent domain's revocation feed.
 */
export const CROSS_DOMAIN_SESSION_MAX_SECONDS = 300;

export async function redeemForeignGrant(
  deps: SessionDeps,
  grant: ForeignGrant,
  csrDer: Uint8Array,
  call: PeerCall,
): Promise<RedeemGrantResponse> {
  const opener = await resolveSessionOpener(deps, call, csrDer);
  const { now, caller, csr } = opener;
  const entry = caller.entry;
  const ownTd = SpiffeId.parse(entry.spiffeId).trustDomain;

  if (grant.parentChain.length === 0) {
    throw new InvalidArgumentError('foreign_grant.parent_chain is empty: the parent SVID is the proof');
  }
  const binding = decodedBinding(grant.binding);
  const parentId = parentSpiffeId(grant.parentChain[0]!);
  const parentTd = parentId.trustDomain;
  if (parentTd.equals(ownTd)) {
    throw new InvalidArgumentError(
      `the parent ${parentId.toString()} is of this server's trust domain: redeem its grant by grant_id`,
    );
  }
  // Our registration says which domains a workload deals with; a grant from any other is not for it.
  if (!(entry.federatesWith ?? []).includes(parentTd.name)) {
    throw new DelegateNotAllowedError(
      `${caller.id} does not federate with "${parentTd.name}" (its entry's federates_with), so it takes no grant from it`,
    );
  }
  const foreign = deps.federation?.bundle(parentTd.name);
  if (foreign === undefined) {
    throw new ContextForeignDomainError(
      `no bundle of trust domain "${parentTd.name}" is held (not federated): nothing vouches for the parent`,
    );
  }
  // Refused without checking more: a wrong caller, key or a stale grant is the cheapest to tell.
  if (binding.childId !== caller.id) {
    throw new GrantWrongRedeemerError(`the grant is for ${binding.childId}, not for ${caller.id}`);
  }
  if (!sameBytes(binding.childKeySha256, sha256(csr.spki))) {
    throw new GrantKeyMismatchError(
      'the grant is for the key the parent bound, and the CSR is for another key',
    );
  }
  if (binding.redeemBy.getTime() <= now.getTime()) {
    throw new GrantExpiredError(`the grant had to be redeemed by ${binding.redeemBy.toISOString()}`);
  }
  if (binding.redeemBy.getTime() - now.getTime() > MAX_REDEEM_WINDOW_SECONDS * 1000) {
    throw new GrantBindingInvalidError(`redeemBy is more than ${MAX_REDEEM_WINDOW_SECONDS} s ahead`);
  }

  // The parent as its own domain vouches for it: path to that domain's bundle, leaf rules, its own context.
  const parentChain = grant.parentChain.map((c) => new Uint8Array(c));
  const parent = verifyX509Svid(parentChain, new BundleSet([deps.ca.bundle(), foreign]), {
    at: now,
    trustDomain: parentTd,
    agentContextOid: deps.ca.agentContextOid,
    cache: null,
  });
  const parentCert = parent.chain[0]!;
  const parentContext = parent.context;
  if (parentContext === undefined) throw new NotASessionError('the parent SVID carries no agent context');
  checkBindingAgainstParent(binding, parentCert.sha256, parentCert.notAfter, parentContext);

  const link = signedParentLink(
    { spiffeId: parentId.toString(), cert: parentCert, context: parentContext, chain: parentChain },
    binding,
    grant.signature,
    'the foreign grant',
  );
  const depth = parentContext.delegation.length + 1;
  if (depth > AGENT_CONTEXT_LIMITS.maxDelegationDepth) {
    throw new DelegationTooDeepError(
      `a chain of ${depth} hops exceeds the limit ${AGENT_CONTEXT_LIMITS.maxDelegationDepth}`,
    );
  }

  const bindingDer = new Uint8Array(grant.binding);
  // The session id is the grant's: a second redemption of the same grant meets the first one's session row.
  const sessionId = `s-x${Buffer.from(sha256(bindingDer)).toString('hex').slice(0, 32)}`;
  const expiresAt = new Date(
    Math.min(binding.notAfter.getTime(), now.getTime() + CROSS_DOMAIN_SESSION_MAX_SECONDS * 1000),
  );
  try {
    return await auditedSharedTransaction(deps.store, async (tx): Promise<RedeemGrantResponse> => {
      await assertSessionQuota(tx, deps.limits, entry.id, now);
      return openDelegatedSession(deps, tx, opener, {
        parentContext,
        link,
        sessionId,
        version: AGENT_CONTEXT_VERSION_CROSS_DOMAIN,
        method: FOREIGN_DELEGATION_METHOD,
        evidenceDer: bindingDer,
        expiresAt,
        what: 'the foreign grant',
        session: {
          depth,
          // No grant bound: the parent's server refuses one for a child of another domain (CreateGrant), as
          // nothing of it could reach this server unsigned and unaltered.
          depthLimit: delegatedDepthLimit({
            depth,
            inherited: AGENT_CONTEXT_LIMITS.maxDelegationDepth,
            entryMax: entry.maxDelegationDepth,
          }),
        },
      });
    });
  } catch (e) {
    if (isLanyardError(e) && e.code === ErrorCode.ALREADY_EXISTS) {
      throw new GrantReplayedError('this foreign grant was already redeemed', { cause: e });
    }
    throw e;
  }
}

function decodedBinding(der: Uint8Array): DelegationBinding {
  try {
    return decodeDelegationBinding(der);
  } catch (e) {
    if (e instanceof AgentContextError) {
      throw new GrantBindingInvalidError(`binding: ${e.message}`, { cause: e });
    }
    throw e;
  }
}

function parentSpiffeId(der: Uint8Array): SpiffeId {
  try {
    // Only to pick the bundle: verifyX509Svid reads it again under every SVID rule.
    return spiffeIdOfLeaf(ParsedCertificate.fromDer(der));
  } catch (e) {
    throw new InvalidArgumentError('foreign_grant.parent_chain[0] is not an X509-SVID', { cause: e });
  }
}

/** What the parent signed must be the parent's: its certificate, root, principal, last link, scopes, expiry. */
function checkBindingAgainstParent(
  b: DelegationBinding,
  parentCertSha256: Uint8Array,
  parentNotAfter: Date,
  ctx: Readonly<AgentContext>,
): void {
  if (!sameBytes(b.parentCertSha256, parentCertSha256)) {
    throw new GrantBindingInvalidError('the binding names another parent certificate than the chain given');
  }
  if (
    b.rootSessionId !== ctx.rootSessionId ||
    b.principalId !== ctx.principal.id ||
    b.principalIssuer !== ctx.principal.issuer ||
    b.principalProvenance !== ctx.principal.provenance
  ) {
    throw new GrantBindingInvalidError("the binding's root session or principal is not the parent's");
  }
  const last = ctx.delegation[ctx.delegation.length - 1];
  const prev = last === undefined ? new Uint8Array(0) : delegationLinkSha256(last);
  if (!sameBytes(b.prevLinkSha256, prev)) {
    throw new GrantBindingInvalidError("the binding does not refer to the parent's last delegation link");
  }
  const own = new Set(ctx.scopes);
  const extra = b.scopes.filter((s) => !own.has(s));
  if (extra.length > 0) {
    throw new ScopeEscalationError(`the grant names scopes ${extra.join(', ')} the parent does not hold`);
  }
  if (b.notAfter.getTime() > parentNotAfter.getTime()) {
    throw new LifetimeEscalationError("the grant lasts past the parent's SVID");
  }
}
