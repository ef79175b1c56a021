/**
 * The checks every session call makes about its mTLS caller: a valid SVID of our trust domain that no one
 * revoked by serial, the registration entry it was issued for, and (for delegation) a live session.
 */
import { ErrorCode, isLanyardError, RevokedError, SessionError } from '../../errors';
import type { Store } from '../../store/store';
import type { SessionRecord } from '../../store/types';
import type { VerifiedSvid } from '../../verify';
import type { AgentContext } from '../../x509/agent-context/types';
import { verifyPeerSvid, type PeerCall } from '../tls/peer-svid';
import type { SessionDeps } from './deps';

export interface Caller {
  peer: VerifiedSvid;
  id: string;
  context: Readonly<AgentContext>;
}

/** The verified caller, refused when its certificate was revoked or it carries no agent context. */
export async function verifyCaller(
  deps: Pick<SessionDeps, 'ca' | 'store'>,
  call: PeerCall,
  now: Date,
): Promise<Caller> {
  const peer = verifyPeerSvid(call, deps.ca, now);
  const id = peer.id.toString();
  const leaf = peer.chain[0]!;
  if ((await deps.store.getRevocation('certificate', leaf.serialHex)) !== undefined) {
    throw new RevokedError(`the client certificate of ${id} (serial ${leaf.serialHex}) is revoked`);
  }
  if (peer.context === undefined) {
    throw new SessionError(
      ErrorCode.NO_MATCHING_ENTRY,
      `${id} is not an SVID issued by this server for an entry (it has no agent context)`,
    );
  }
  return { peer, id, context: peer.context };
}

/** The stored session of an SVID, or undefined for a workload SVID (its session is not a task session). */
export async function sessionOf(
  store: Store,
  context: Readonly<AgentContext>,
): Promise<SessionRecord | undefined> {
  try {
    return await store.getSession(context.sessionId);
  } catch (e) {
    if (isLanyardError(e) && e.code === ErrorCode.NOT_FOUND) return undefined;
    throw e;
  }
}

/** Refuses a session that ended (or whose ancestor ended: the end cascades) or expired. */
export function assertLive(session: SessionRecord, now: Date): void {
  if (session.endedAt !== undefined) {
    throw new SessionError(
      ErrorCode.SESSION_ENDED,
      `session ${session.id} ended at ${session.endedAt.toISOString()}${session.endReason ? ` (${session.endReason})` : ''}`,
    );
  }
  if (session.expiresAt.getTime() <= now.getTime()) {
    throw new SessionError(
      ErrorCode.SESSION_EXPIRED,
      `session ${session.id} expired at ${session.expiresAt.toISOString()}`,
    );
  }
}

/** The caller's live task session; a workload SVID is refused (delegation starts from a session). */
export async function callerSession(store: Store, caller: Caller, now: Date): Promise<SessionRecord> {
  const session = await sessionOf(store, caller.context);
  if (session === undefined || session.spiffeId !== caller.id || session.entryId !== caller.context.agentId) {
    throw new SessionError(
      ErrorCode.NOT_A_SESSION,
      `${caller.id} presented a workload SVID: call StartSession first and use the session SVID`,
    );
  }
  assertLive(session, now);
  return session;
}
