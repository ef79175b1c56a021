/**
 * The per-agent session limits (config `limits.*`). Every session that ends becomes a revocation that every
 * verifier holds until the session would have expired, so an agent that starts and ends sessions in a loop
 * grows everyone's revocation state. The limits are applied where sessions are created (StartSession,
 * RedeemGrant), never where they end: refusing an EndSession would keep a session alive that its owner
 * wanted gone. Live sessions plus sessions ended in the window bound what one entry adds to the feed.
 */
import { QuotaExceededError } from '../../errors';
import type { StoreOps } from '../../store/store';

export interface SessionLimits {
  liveSessionsPerAgent: number;
  endedSessionsPerAgent: number;
  endedSessionsWindowSeconds: number;
  /** The longest a StartSession session lasts; its SVIDs (each at most the entry's TTL) renew within it. */
  maxSessionTtlSeconds: number;
}

/** @throws SessionError(ERR_QUOTA_EXCEEDED) when `entryId` may not open another session at `now`. */
export async function assertSessionQuota(
  store: Pick<StoreOps, 'countAgentSessions'>,
  limits: SessionLimits,
  entryId: string,
  now: Date,
): Promise<void> {
  const since = new Date(now.getTime() - limits.endedSessionsWindowSeconds * 1000);
  const counts = await store.countAgentSessions(entryId, now, since);
  if (counts.live >= limits.liveSessionsPerAgent) {
    throw new QuotaExceededError(
      `entry ${entryId} has ${counts.live} open sessions, the limit (limits.live_sessions_per_agent) is ` +
        `${limits.liveSessionsPerAgent}: end one first`,
    );
  }
  if (counts.endedInWindow >= limits.endedSessionsPerAgent) {
    throw new QuotaExceededError(
      `${counts.endedInWindow} sessions of entry ${entryId} ended in the last ` +
        `${limits.endedSessionsWindowSeconds}s, the limit (limits.ended_sessions_per_agent) is ` +
        `${limits.endedSessionsPerAgent}: each ended session is a revocation every verifier holds`,
    );
  }
}
