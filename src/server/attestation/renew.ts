/**
 * Renew: a new SVID for the caller's current one, over mTLS. The presented SVID is verified with
 * verifyX509Svid against the current bundle (expired, foreign or tampered -> UNAUTHENTICATED); its agent
 * context names the entry (agentId), which must still exist, be unexpired and carry the same SPIFFE ID —
 * deleting or expiring an entry is how an operator revokes a workload (PERMISSION_DENIED).
 */
import type { CaManager } from '../../ca';
import { ErrorCode, IssuanceError, isLanyardError } from '../../errors';
import type { RenewRequest, RenewResponse } from '../../gen/lanyard/v1/attestation';
import type { Store } from '../../store/store';
import type { Entry } from '../../store/types';
import { parseCsr } from '../../x509/csr';
import { bundleToProto } from '../bundle/to-proto';
import { verifyPeerSvid, type PeerCall } from '../tls/peer-svid';
import { issueWorkloadSvid, sha256, svidToProto } from './issue';
import { RENEW_METHOD, renewedWorkloadContext, wholeSeconds } from './workload-context';

export interface RenewDeps {
  store: Store;
  ca: CaManager;
  defaultTtlSeconds: number;
  clock: () => Date;
}

export async function renew(deps: RenewDeps, req: RenewRequest, call: PeerCall): Promise<RenewResponse> {
  const now = deps.clock();
  const peer = verifyPeerSvid(call, deps.ca, now);
  const csr = parseCsr(req.csr);
  const spiffeId = peer.id.toString();
  const previous = peer.context;
  if (previous === undefined) {
    // The server's own SVID and SVIDs from elsewhere carry no context: nothing says which entry they are.
    throw new IssuanceError(
      ErrorCode.NO_MATCHING_ENTRY,
      `${spiffeId} is not a workload SVID issued by Attest (it has no agent context); attest instead`,
    );
  }
  const entry = await currentEntry(deps.store, previous.agentId, spiffeId, now);
  const leaf = peer.chain[0];
  const signed = await issueWorkloadSvid(deps.ca, {
    entry,
    publicKey: csr.publicKey,
    context: renewedWorkloadContext(previous, entry, {
      method: RENEW_METHOD,
      // The evidence of a renewal is the SVID presented for it.
      evidenceSha256: leaf !== undefined ? sha256(leaf.der) : new Uint8Array(32),
      issuer: deps.ca.serverSvid().spiffeId,
      issuedAt: wholeSeconds(now),
    }),
    defaultTtlSeconds: deps.defaultTtlSeconds,
    now,
  });
  return { svid: svidToProto(signed, entry), bundle: bundleToProto(signed.bundle) };
}

async function currentEntry(store: Store, entryId: string, spiffeId: string, now: Date): Promise<Entry> {
  let entry: Entry;
  try {
    entry = await store.getEntry(entryId);
  } catch (e) {
    if (isLanyardError(e) && e.code === ErrorCode.NOT_FOUND) {
      throw new IssuanceError(
        ErrorCode.NO_MATCHING_ENTRY,
        `the registration entry of ${spiffeId} (${entryId}) was deleted: renewal refused`,
      );
    }
    throw e;
  }
  if (entry.spiffeId !== spiffeId) {
    throw new IssuanceError(
      ErrorCode.NO_MATCHING_ENTRY,
      `the registration entry ${entryId} now issues ${entry.spiffeId}, not ${spiffeId}: attest again`,
    );
  }
  if (entry.expiresAt !== undefined && entry.expiresAt.getTime() <= now.getTime()) {
    throw new IssuanceError(
      ErrorCode.NO_MATCHING_ENTRY,
      `the registration entry ${entryId} of ${spiffeId} expired at ${entry.expiresAt.toISOString()}: renewal refused`,
    );
  }
  return entry;
}
