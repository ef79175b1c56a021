/**
 * EndSession and RevokeSvid. Ending a session ends every session delegated from it, transitively, in one
 * transaction with its audit records, and publishes one revocation per ended session to watchers after it
 * committed. The session's own agent (the workload SVID of the same entry) may end it, and a live session may
 * end itself and what was delegated from it; anyone else must be an admin: an admin SVID on the public
 * listener, or anyone who can open the admin socket (file permissions are that socket's guard).
 */
import { AuthorizationError, InvalidArgumentError } from '../../errors';
import type {
  EndSessionRequest,
  EndSessionResponse,
  RevokeSvidRequest,
  RevokeSvidResponse,
} from '../../gen/lanyard/v1/session';
import { recordInTransaction } from '../audit/in-transaction';
import type { SessionRecord } from '../../store/types';
import { AGENT_CONTEXT_LIMITS } from '../../x509/agent-context/types';
import { resolveCaller, type ResolvedCaller } from '../auth/resolve-caller';
import type { PeerCall } from '../tls/peer-svid';
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
  const caller = await resolveCaller(deps, call, 'workload-or-session', now);
  const target = await deps.store.getSession(req.sessionId);
  await mayEnd(deps, caller, target);
  return endSessionAs(deps, req, caller.id, now);
}

/**
 * Who may end `target`: a session SVID only its own session and the sessions delegated from it (a session is
 * scoped task authority, not the agent's); a workload SVID any session of its own entry; an admin's workload
 * SVID any session.
 */
async function mayEnd(deps: SessionDeps, caller: ResolvedCaller, target: SessionRecord): Promise<void> {
  if (caller.session !== undefined) {
    if (await descendsFrom(deps, target, caller.session.id)) return;
    throw new AuthorizationError(
      `session ${caller.session.id} of ${caller.id} may end only itself and the sessions delegated from it, not ${target.id}`,
    );
  }
  if (caller.entry.id === target.entryId && caller.id === target.spiffeId) return;
  if (caller.entry.admin) return;
  throw new AuthorizationError(
    `${caller.id} may end only the sessions of its own entry ${caller.entry.id}; session ${target.id} is of ${target.spiffeId} (admins may end any)`,
  );
}

/** Whether `session` is `ancestorId` or was delegated (transitively) from it. */
async function descendsFrom(deps: SessionDeps, session: SessionRecord, ancestorId: string): Promise<boolean> {
  let s = session;
  for (let hops = 0; hops <= AGENT_CONTEXT_LIMITS.maxDelegationDepth; hops++) {
    if (s.id === ancestorId) return true;
    if (s.parentSessionId === undefined) return false;
    s = await deps.store.getSession(s.parentSessionId);
  }
  return false;
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
  const admin = await resolveCaller(deps, call, 'admin', deps.clock());
  return revokeSvidAs(deps, req, admin.id);
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
    throw new InvalidArgumentError(`reason is longer than ${MAX_REASON_BYTES} bytes`);
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
    throw new InvalidArgumentError('serial_hex must be 1..64 hex digits');
  }
  return hex.replace(/^0+(?=.)/, '');
}
