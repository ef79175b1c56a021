/** Signing a session SVID whose notAfter never passes a given instant (the session's or the grant's end). */
import { randomBytes } from 'node:crypto';
import type { CaManager, SignedX509Svid, SvidSubjectKey } from '../../ca';
import { SessionExpiredError } from '../../errors';
import type { Entry } from '../../store/types';
import { encodeAgentContext } from '../../x509/agent-context/codec';
import type { AgentContext } from '../../x509/agent-context/types';
import { subjectKeyOf, withIssuedContext } from './workload-svid';

/** 128 random bits: a session id is a bearer of nothing, but it must not be guessable or enumerable. */
export function newSessionId(): string {
  return `s-${randomBytes(16).toString('hex')}`;
}

/** Whole seconds from `now` to `until`, at most `maxSeconds`. Refuses when nothing is left. */
export function secondsUntil(now: Date, until: Date, maxSeconds: number, what: string): number {
  const left = Math.floor((until.getTime() - now.getTime()) / 1000);
  if (left < 1) throw new SessionExpiredError(`${what} has no lifetime left`);
  return Math.min(left, maxSeconds);
}

export async function signSessionSvid(
  ca: CaManager,
  req: { entry: Entry; context: AgentContext; ttlSeconds: number; now: Date } & SvidSubjectKey,
): Promise<SignedX509Svid> {
  const agentContextDer = encodeAgentContext(req.context);
  const signed = await ca.signX509Svid({
    spiffeId: req.entry.spiffeId,
    ...subjectKeyOf(req),
    ttlSeconds: req.ttlSeconds,
    ...(req.entry.dnsNames.length > 0 ? { dnsNames: [...req.entry.dnsNames] } : {}),
    agentContextDer,
    now: req.now,
  });
  return withIssuedContext(signed, agentContextDer, req.context);
}
