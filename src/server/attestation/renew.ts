/**
 * Renew: a new SVID for the caller's current one, over mTLS. The caller is resolved like every mTLS caller
 * (auth/resolve-caller.ts): a valid, unrevoked SVID of ours (expired, foreign or tampered ->
 * UNAUTHENTICATED) whose entry still exists, is unexpired and carries the same SPIFFE ID — deleting or
 * expiring an entry is how an operator revokes a workload (PERMISSION_DENIED) — and, for a session SVID, a
 * live session nothing of which was revoked.
 */
import type { CaManager, SignedX509Svid } from '../../ca';
import { applyIssuancePolicy, type IssuancePolicySource } from '../../policy';
import { NoMatchingEntryError } from '../../errors';
import type { RenewRequest, RenewResponse } from '../../gen/lanyard/v1/attestation';
import type { Store } from '../../store/store';
import type { Entry, SessionRecord } from '../../store/types';
import type { AgentContext } from '../../x509/agent-context/types';
import { bundleToProto } from '../bundle/to-proto';
import { secondsUntil, signSessionSvid } from '../issuance/session-svid';
import { resolveCaller } from '../auth/resolve-caller';
import { auditedSharedTransaction } from '../audit/in-transaction';
import type { PeerCall } from '../tls/peer-svid';
import { sha256 } from '../../internal/digest';
import { issueWorkloadSvid, svidToProto, svidTtlSeconds } from '../issuance/workload-svid';
import { RENEW_METHOD, renewedWorkloadContext, wholeSeconds } from '../issuance/workload-context';
import type { FederatedBundleSource } from '../federation/manager';

export interface RenewDeps {
  store: Store;
  ca: CaManager;
  defaultTtlSeconds: number;
  clock: () => Date;
  /** Issuance policy: a renewed workload SVID gets the scopes it permits now, and its version. */
  policy?: IssuancePolicySource;
  /** The federated bundles an entry's federates_with names; absent = none handed out. */
  federation?: FederatedBundleSource;
}

export async function renew(deps: RenewDeps, req: RenewRequest, call: PeerCall): Promise<RenewResponse> {
  const now = deps.clock();
  // A workload SVID renews into a workload SVID, a live session's SVID into the same session.
  const caller = await resolveCaller(deps, call, 'workload-or-session', now);
  // The CSR is checked where the leaf is signed (CaManager.signX509Svid), in the same signing-pool request.
  const csr = req.csr;
  const { id: spiffeId, leaf, entry, session } = caller;
  const previous = caller.context;
  const provenance = {
    method: RENEW_METHOD,
    // The evidence of a renewal is the SVID presented for it.
    evidenceSha256: sha256(leaf.der),
    issuer: deps.ca.serverSvid().id.toString(),
    issuedAt: wholeSeconds(now),
  };
  if (session === undefined && entry.parentId !== undefined) {
    // An entry under a node agent is issued only through that agent, which attests the workload each time:
    // renewing directly would let an SVID holder keep the identity after leaving the node (or the entry's
    // selectors). Session SVIDs started through the agent still renew here: the session bounds them.
    throw new NoMatchingEntryError(
      `${spiffeId} is issued through its node agent (${entry.parentId}): get it from the agent, not Renew`,
    );
  }
  const signed =
    session === undefined
      ? await issueWorkloadSvid(deps.ca, {
          entry,
          csr,
          context: renewedWorkloadContext(previous, entry, provenance, deps.policy),
          defaultTtlSeconds: deps.defaultTtlSeconds,
          now,
        })
      : await renewSession(deps, { session, previous, leafSpki: leaf.spkiDer, entry, csr, provenance, now });
  // The new serial of a session (its revocation must reach it) and the audit record commit together, in the
  // group commit shared with the other issuance calls in flight; the caller is answered after it.
  return auditedSharedTransaction(deps.store, async (tx) => {
    if (session !== undefined) {
      await tx.addSessionCertificate(session.id, signed.leaf.serialHex, signed.leaf.notAfter);
    }
    return {
      svid: svidToProto(signed, entry),
      bundle: bundleToProto(signed.bundle),
      federatedBundles: (deps.federation?.bundlesFor(entry.federatesWith) ?? []).map((b) => bundleToProto(b)),
    };
  });
}

/**
 * A task session's SVID renews into the same session (retries and background completion stay attributed to
 * it): same context and delegation chain, scopes narrowed to what the entry still allows and the issuance
 * policy now permits, never past the session's end. resolveCaller already refused an ended or expired session
 * (or one under an ended ancestor or a revoked SVID).
 */
async function renewSession(
  deps: RenewDeps,
  r: {
    session: SessionRecord;
    previous: Readonly<AgentContext>;
    leafSpki: Uint8Array;
    entry: Entry;
    csr: Uint8Array;
    provenance: AgentContext['provenance'];
    now: Date;
  },
): Promise<SignedX509Svid> {
  const delegated = r.previous.delegation.length > 0;
  // The parent's binding names the child's key, so a delegated session keeps it: the chain would not verify
  // for another. (The session is live: resolveCaller checked it.) The CA refuses a CSR for another key with
  // ERR_INVALID_ARGUMENT before it signs, where it checks the CSR.
  const sameKeyAs = delegated
    ? {
        spki: r.leafSpki,
        refusal: `session ${r.session.id} was delegated to this key: renew with a CSR for the same key`,
      }
    : undefined;
  const allowed = new Set(r.entry.allowedScopes);
  // The issuance policy in force now applies too (a withdrawn scope goes at the next renewal, with the new
  // policy version); scopes only ever narrow here, so a renewal cannot widen what the session was given.
  const context: AgentContext = applyIssuancePolicy(
    deps.policy,
    r.entry.spiffeId,
    {
      ...r.previous,
      principal: { ...r.previous.principal },
      // A root session narrows to what its entry still allows; a delegated one holds what its parent granted
      // (the grant, not the child's entry, is the source of those scopes).
      scopes: r.previous.scopes.filter((s) => delegated || allowed.has(s)),
      provenance: r.provenance,
      delegation: [...r.previous.delegation],
    },
    delegated ? 'delegation' : 'session',
  );
  const ttlSeconds = secondsUntil(
    r.now,
    r.session.expiresAt,
    svidTtlSeconds(r.entry, deps.defaultTtlSeconds),
    `session ${r.session.id}`,
  );
  const signed = await signSessionSvid(deps.ca, {
    entry: r.entry,
    csr: r.csr,
    ...(sameKeyAs !== undefined && { sameKeyAs }),
    context,
    ttlSeconds,
    now: r.now,
  });
  return signed;
}
