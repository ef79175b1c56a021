/**
 * EndSession and RevokeSvid. Ending a session ends every session delegated from it, transitively, in one
 * transaction, and publishes one revocation per ended session to watchers after it committed. The session's
 * own agent (an SVID of the same entry) may end it; anyone else must be an admin.
 */
import { ErrorCode, SessionError } from '../../errors';
import type {
  EndSessionRequest,
  EndSessionResponse,
  RevokeSvidRequest,
  RevokeSvidResponse,
} from '../../gen/lanyard/v1/session';
import { requireAdmin } from '../tls/admin-guard';
import type { PeerCall } from '../tls/peer-svid';
import { verifyCaller } from './caller';
import type { SessionDeps } from './deps';
import { revocationToProto } from './to-proto';

const MAX_REASON_BYTES = 256;

export async function endSession(
  deps: SessionDeps,
  req: EndSessionRequest,
  call: PeerCall,
): Promise<EndSessionResponse> {
  const now = deps.clock();
  checkReason(req.reason);
  const caller = await verifyCaller(deps, call, now);
  const session = await deps.store.getSession(req.sessionId);
  const ownAgent = caller.context.agentId === session.entryId && caller.id === session.spiffeId;
  if (!ownAgent) await requireAdmin(deps, call);
  const { ended, revocations } = await deps.store.endSessionTree(
    session.id,
    now,
    req.reason || `ended by ${caller.id}`,
  );
  deps.revocations.publish(revocations);
  deps.logger.info({ sessionId: session.id, ended: ended.length, by: caller.id }, 'session ended');
  return { endedSessionIds: ended.map((s) => s.id) };
}

export async function revokeSvid(
  deps: SessionDeps,
  req: RevokeSvidRequest,
  call: PeerCall,
): Promise<RevokeSvidResponse> {
  const now = deps.clock();
  checkReason(req.reason);
  await requireAdmin(deps, call);
  const serial = normaliseSerial(req.serialHex);
  // No record maps every serial to its expiry, but no SVID outlives the CA lifetime from now.
  const expiresAt = new Date(now.getTime() + deps.caTtlSeconds * 1000);
  const revocation = await deps.store.addRevocation(
    { kind: 'certificate', id: serial, reason: req.reason || 'revoked by an admin', expiresAt },
    now,
  );
  deps.revocations.publish([revocation]);
  return { revocation: revocationToProto(revocation) };
}

function checkReason(reason: string): void {
  if (Buffer.byteLength(reason) > MAX_REASON_BYTES) {
    throw new SessionError(ErrorCode.INVALID_ARGUMENT, `reason is longer than ${MAX_REASON_BYTES} bytes`);
  }
}

/** Lower-case hex without leading zeros, as ParsedCertificate.serialHex and the verifier compare them. */
function normaliseSerial(input: string): string {
  const hex = input.toLowerCase().replace(/[:\s]/g, '');
  if (!/^[0-9a-f]{1,64}$/.test(hex)) {
    throw new SessionError(ErrorCode.INVALID_ARGUMENT, 'serial_hex must be 1..64 hex digits');
  }
  return hex.replace(/^0+(?=.)/, '');
}
