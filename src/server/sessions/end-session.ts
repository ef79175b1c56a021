/**
 * EndSession and RevokeSvid. Ending a session ends every session delegated from it, transitively, in one
 * transaction with its audit records, and publishes one revocation per ended session to watchers after it
 * committed. The session's
 * own agent (an SVID of the same entry) may end it; anyone else must be an admin: an admin SVID on the public
 * listener, or anyone who can open the admin socket (file permissions are that socket's guard).
 */
import { ErrorCode, SessionError } from '../../errors';
import type {
  EndSessionRequest,
  EndSessionResponse,
  RevokeSvidRequest,
  RevokeSvidResponse,
} from '../../gen/lanyard/v1/session';
import { recordInTransaction } from '../audit/in-transaction';
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
  return endSessionAs(deps, req, caller.id, now);
}

/** Ends the session tree once the caller was authorised; `by` names the caller in the reason and the log. */
export async function endSessionAs(
  deps: SessionDeps,
  req: EndSessionRequest,
  by: string,
  now: Date = deps.clock(),
): Promise<EndSessionResponse> {
  checkReason(req.reason);
  // The audit records (one per ended session) commit with the cascade, or nothing does.
  const { response, revocations } = await deps.store.transaction(async (tx) => {
    const { ended, revocations } = await tx.endSessionTree(
      req.sessionId,
      now,
      req.reason || boundedReason(`ended by ${by}`),
    );
    const response: EndSessionResponse = { endedSessionIds: ended.map((s) => s.id) };
    await recordInTransaction(tx, response);
    return { response, revocations };
  });
  deps.revocations.publish(revocations);
  deps.logger.info({ sessionId: req.sessionId, ended: response.endedSessionIds.length, by }, 'session ended');
  return response;
}

export async function revokeSvid(
  deps: SessionDeps,
  req: RevokeSvidRequest,
  call: PeerCall,
): Promise<RevokeSvidResponse> {
  checkReason(req.reason);
  const by = await requireAdmin(deps, call);
  return revokeSvidAs(deps, req, by);
}

/** Revokes one serial once the caller was authorised as an admin. */
export async function revokeSvidAs(
  deps: SessionDeps,
  req: RevokeSvidRequest,
  by: string,
): Promise<RevokeSvidResponse> {
  const now = deps.clock();
  checkReason(req.reason);
  const serial = normaliseSerial(req.serialHex);
  // No record maps every serial to its expiry, but no SVID outlives the CA lifetime from now.
  const expiresAt = new Date(now.getTime() + deps.caTtlSeconds * 1000);
  const { revocation, response } = await deps.store.transaction(async (tx) => {
    const revocation = await tx.addRevocation(
      { kind: 'certificate', id: serial, reason: req.reason || boundedReason(`revoked by ${by}`), expiresAt },
      now,
    );
    const response: RevokeSvidResponse = { revocation: revocationToProto(revocation) };
    await recordInTransaction(tx, response);
    return { revocation, response };
  });
  deps.revocations.publish([revocation]);
  deps.logger.info({ serial, by }, 'certificate revoked');
  return response;
}

/**
 * A reason is held by every verifier until what it names expires, so it is short: a caller's longer one is
 * refused; the default one (which names the caller, whose SPIFFE ID may be up to 2 KiB) is cut to fit.
 */
function checkReason(reason: string): void {
  if (Buffer.byteLength(reason) > MAX_REASON_BYTES) {
    throw new SessionError(ErrorCode.INVALID_ARGUMENT, `reason is longer than ${MAX_REASON_BYTES} bytes`);
  }
}

function boundedReason(text: string): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= MAX_REASON_BYTES) return text;
  // Cut on a character boundary: drop a partial UTF-8 sequence left at the end.
  let end = MAX_REASON_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString();
}

/** Lower-case hex without leading zeros, as ParsedCertificate.serialHex and the verifier compare them. */
function normaliseSerial(input: string): string {
  const hex = input.toLowerCase().replace(/[:\s]/g, '');
  if (!/^[0-9a-f]{1,64}$/.test(hex)) {
    throw new SessionError(ErrorCode.INVALID_ARGUMENT, 'serial_hex must be 1..64 hex digits');
  }
  return hex.replace(/^0+(?=.)/, '');
}
