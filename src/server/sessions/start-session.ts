/**
 * StartSession: an attested agent, over mTLS with its workload SVID, opens a task session for a principal.
 * The session SVID carries a fresh session id (= root session id), the principal, the intent, and the scopes
 * requested AND allowed by the entry AND permitted by the issuance policy when one is configured (each scope an
 * `issue` request of kind "session" for the session as it would be issued: its principal, intent, agent), with
 * that policy's version. The session lasts the TTL asked for (default: one SVID lifetime), at most
 * `limits.max_session_ttl`; each of its SVIDs lives no longer than the entry's SVID TTL, the session and the CA,
 * and is renewed (Renew) within the session, so a long task keeps one session identity on short-lived SVIDs.
 */
import { sha256 } from '../../internal/digest';
import { InvalidArgumentError } from '../../errors';
import type { StartSessionRequest, StartSessionResponse } from '../../gen/lanyard/v1/session';
import {
  AGENT_CONTEXT_LIMITS,
  AGENT_CONTEXT_VERSION,
  type AgentContext,
} from '../../x509/agent-context/types';
import { svidTtlSeconds } from '../issuance/workload-svid';
import { auditedSharedTransaction } from '../audit/in-transaction';
import { NO_POLICY_VERSION, wholeSeconds } from '../issuance/workload-context';
import { applyIssuancePolicy } from '../../policy';
import type { PeerCall } from '../tls/peer-svid';
import type { SessionDeps } from './deps';
import { newSessionId } from '../issuance/session-svid';
import { resolveSessionOpener, signOpenerSvid, storeOpenedSession } from './session-opening';
import { assertSessionQuota } from './quota';

export const START_SESSION_METHOD = 'start_session';

export async function startSession(
  deps: SessionDeps,
  req: StartSessionRequest,
  call: PeerCall,
): Promise<StartSessionResponse> {
  // A session SVID may not open a fresh root session: that would shed its principal and delegation limits.
  const opener = await resolveSessionOpener(deps, call, req.csr);
  const { now, caller } = opener;
  const entry = caller.entry;
  if (Buffer.byteLength(req.intent) > AGENT_CONTEXT_LIMITS.maxIntentLength) {
    throw new InvalidArgumentError(
      `intent is longer than ${AGENT_CONTEXT_LIMITS.maxIntentLength} bytes: a short task description, not a prompt`,
    );
  }
  if (!Number.isInteger(req.ttlSeconds) || req.ttlSeconds < 0) {
    throw new InvalidArgumentError('ttl_seconds must be >= 0');
  }
  const allowed = new Set(entry.allowedScopes);
  const entryScopes = [...new Set(req.scopes)].filter((s) => allowed.has(s));
  const svidMaxTtl = svidTtlSeconds(entry, deps.defaultTtlSeconds);
  const sessionTtl =
    req.ttlSeconds > 0 ? Math.min(req.ttlSeconds, deps.limits.maxSessionTtlSeconds) : svidMaxTtl;
  const ttlSeconds = Math.min(sessionTtl, svidMaxTtl);

  // Checked before signing (a refused call costs no signature) and again in the transaction (races).
  await assertSessionQuota(deps.store, deps.limits, entry.id, now);
  const serverId = deps.ca.serverSvid().id.toString();
  const principal = await deps.principals.principalFor(req.principal, entry, caller.id, serverId, now);
  const evidence = req.principal?.evidence;
  const sessionId = newSessionId();
  const context: AgentContext = applyIssuancePolicy(
    deps.policy,
    entry.spiffeId,
    {
      version: AGENT_CONTEXT_VERSION,
      agentId: entry.id,
      sessionId,
      rootSessionId: sessionId,
      principal,
      intent: req.intent,
      scopes: entryScopes,
      policyVersion: NO_POLICY_VERSION,
      provenance: {
        method: START_SESSION_METHOD,
        // The principal's token when there is one, else the workload SVID that opened the session.
        evidenceSha256: sha256(evidence?.$case === 'token' ? Buffer.from(evidence.value) : caller.leaf.der),
        issuer: serverId,
        issuedAt: wholeSeconds(now),
      },
      delegation: [],
    },
    'session',
  );
  const scopes = context.scopes;
  const signed = await signOpenerSvid(deps, opener, context, ttlSeconds);
  // A session that fits in one SVID ends with it (the CA may have cut it short); a longer one ends at its TTL,
  // and renewal never extends it.
  const expiresAt =
    sessionTtl > ttlSeconds
      ? new Date(wholeSeconds(now).getTime() + sessionTtl * 1000)
      : signed.leaf.notAfter;
  // The session, its first serial and its audit record commit together.
  return auditedSharedTransaction(deps.store, async (tx): Promise<StartSessionResponse> => {
    await assertSessionQuota(tx, deps.limits, entry.id, now);
    const answer = await storeOpenedSession(
      tx,
      opener,
      {
        id: sessionId,
        rootSessionId: sessionId,
        principal,
        intent: req.intent,
        scopes,
        depth: 0,
        depthLimit: entry.maxDelegationDepth,
        expiresAt,
      },
      signed,
    );
    return { ...answer, sessionId, expiresAt, scopes };
  });
}
