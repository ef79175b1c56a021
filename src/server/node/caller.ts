/**
 * Who a NodeService caller is: a node agent authenticated by its own SVID over mTLS, verified like any
 * Renew caller (verifier library, current bundle, revocation by serial), not a task session's or delegated
 * SVID, whose registration entry still exists and still issues that SPIFFE ID. The agent's SPIFFE ID is then the only parent it may act for.
 */
import type { CaManager } from '../../ca';
import { ErrorCode, IssuanceError, RevokedError } from '../../errors';
import type { Store } from '../../store/store';
import type { Entry } from '../../store/types';
import { currentEntry } from '../attestation/renew';
import { sessionOf } from '../sessions/caller';
import { verifyPeerSvid, type PeerCall } from '../tls/peer-svid';

export interface NodeCaller {
  /** The agent's SPIFFE ID: entries with this parent_id are the agent's to serve. */
  spiffeId: string;
  /** The agent's own registration entry. */
  entry: Entry;
  /** DER of the agent's leaf certificate (the evidence behind what it asks for). */
  leafDer: Uint8Array;
}

export async function authenticateNode(
  deps: { ca: CaManager; store: Store },
  call: PeerCall,
  now: Date,
): Promise<NodeCaller> {
  const peer = verifyPeerSvid(call, deps.ca, now);
  const spiffeId = peer.id.toString();
  const leaf = peer.chain[0]!;
  if (peer.context === undefined) {
    throw new IssuanceError(
      ErrorCode.NO_MATCHING_ENTRY,
      `${spiffeId} has no agent context: a node agent calls with the SVID it got from Attest`,
    );
  }
  // Only the plain SVID from Attest/Renew speaks for a node agent. A task session's SVID carries the same
  // SPIFFE ID, but it is bounded by its session: accepting it here would let it outlive the session's end.
  if (peer.context.delegation.length > 0 || (await sessionOf(deps.store, peer.context)) !== undefined) {
    throw new IssuanceError(
      ErrorCode.NO_MATCHING_ENTRY,
      `${spiffeId} called with a task session's SVID: a node agent calls with the SVID it got from Attest`,
    );
  }
  if ((await deps.store.getRevocation('certificate', leaf.serialHex)) !== undefined) {
    throw new RevokedError(`${spiffeId}: certificate serial ${leaf.serialHex} is revoked`);
  }
  const entry = await currentEntry(deps.store, peer.context.agentId, spiffeId, now);
  return { spiffeId, entry, leafDer: leaf.der };
}
