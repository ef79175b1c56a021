/**
 * Who is calling: the one caller-authentication path for every mTLS call to the server (attestation Renew,
 * sessions and delegation, the node agent API, audit shipping, remote admin). Every call runs the same checks
 * in the same order, so no service can skip one or reorder them; what differs is only the `kind` of caller
 * the call takes:
 *
 *   1. a client certificate that verifies as an X509-SVID of this trust domain against the current bundle
 *      (chain, validity, trust domain: verifyPeerSvid)                          UNAUTHENTICATED
 *   2. its serial is not revoked                                                UNAUTHENTICATED, ERR_REVOKED
 *   3. it carries an agent context (this server issued it for an entry)         PERMISSION_DENIED
 *   4. a session SVID: its session is stored, is this SVID's, has neither ended nor expired, and neither the
 *      SVID that opened it nor the parent certificate it was delegated with is revoked — the same for every
 *      session it descends from                  PERMISSION_DENIED (ERR_SESSION_*), or ERR_REVOKED
 *   5. the SVID is of the kind the call takes: workload/node/admin calls refuse session SVIDs, session calls
 *      refuse workload SVIDs                                                    PERMISSION_DENIED / FAILED_PRECONDITION
 *   6. its registration entry still exists, issues this SPIFFE ID and has not expired  PERMISSION_DENIED
 *   7. admin: that entry has admin=true                                         PERMISSION_DENIED
 *
 * Session checks come before the kind check so that an ended session is named as ended whatever it called.
 */
import type { CaManager } from '../../ca';
import {
  AuthorizationError,
  NoMatchingEntryError,
  NotASessionError,
  RevokedError,
  SessionEndedError,
  SessionExpiredError,
  SessionUnknownError,
} from '../../errors';
import type { CallerRecords, Store } from '../../store/store';
import type { Entry, SessionRecord } from '../../store/types';
import type { VerifyX509SvidResult } from '../../verify';
import type { ParsedCertificate } from '../../x509/certificate';
import type { AgentContext } from '../../x509/agent-context/types';
import { noteAuthenticatedPeer } from '../audit/authenticated-peer';
import { WORKLOAD_SESSION_PREFIX } from '../issuance/workload-context';
import { verifyPeerSvid, type PeerCall } from '../tls/peer-svid';

/**
 * What a call takes:
 * - `workload`: an agent's workload SVID (from Attest, Renew or its node agent), never a session's.
 * - `node`: a node agent's own workload SVID (the NodeService).
 * - `session`: the SVID of a live task session (StartSession or a redeemed grant).
 * - `workload-or-session`: either; a session SVID must then be of a live session.
 * - `admin`: the workload SVID of an entry with admin=true (a session never carries admin rights).
 */
export type CallerKind = 'workload' | 'node' | 'session' | 'workload-or-session' | 'admin';

export interface ResolvedCaller {
  /** The caller's SPIFFE ID. */
  id: string;
  peer: VerifyX509SvidResult;
  leaf: ParsedCertificate;
  context: Readonly<AgentContext>;
  /** The registration entry the SVID was issued for, as it is now. */
  entry: Entry;
  /** The caller's task session; undefined for a workload SVID. */
  session?: SessionRecord;
}

export type CallerOf<K extends CallerKind> = K extends 'session'
  ? ResolvedCaller & { session: SessionRecord }
  : K extends 'workload-or-session'
    ? ResolvedCaller
    : ResolvedCaller & { session?: undefined };

export interface CallerDeps {
  ca: CaManager;
  store: Pick<Store, 'readCaller'>;
}

/** Deepest ancestor walk: far above the delegation depth limit, so only a corrupt store loop reaches it. */
const MAX_ANCESTORS = 64;

export async function resolveCaller<K extends CallerKind>(
  deps: CallerDeps,
  call: PeerCall,
  kind: K,
  now: Date,
): Promise<CallerOf<K>> {
  const peer = verifyPeerSvid(call, deps.ca, now);
  // The audit wrapper names the caller from this verification instead of repeating it.
  noteAuthenticatedPeer(call, deps.ca, peer);
  const id = peer.id.toString();
  const leaf = peer.chain[0]!;
  const context = peer.context;
  // One read for every record the checks below consult, so they judge one state of the store (and the call waits
  // for the store once, not once a record).
  const records = await deps.store.readCaller({
    serialHex: leaf.serialHex,
    ...(context !== undefined && { sessionId: context.sessionId, entryId: context.agentId }),
    maxAncestors: MAX_ANCESTORS,
  });
  if (records.certificateRevoked) {
    throw new RevokedError(`the client certificate of ${id} (serial ${leaf.serialHex}) is revoked`);
  }
  if (context === undefined) {
    // The server's own SVID and SVIDs from elsewhere carry no context: nothing says which entry they are.
    throw new NoMatchingEntryError(
      `${id} is not an SVID this server issued for a registration entry (it has no agent context)`,
    );
  }

  const session = callerSession(records, id, context, now);
  checkKind(kind, id, session);
  const entry = checkEntry(records.entry, context.agentId, id, now);
  if (kind === 'admin' && !entry.admin) {
    throw new AuthorizationError(
      `${id} is not an admin: its registration entry ${entry.id} lacks admin=true`,
    );
  }
  const resolved: ResolvedCaller = { id, peer, leaf, context, entry };
  if (session !== undefined) resolved.session = session;
  return resolved as CallerOf<K>;
}

/**
 * The live session of a session SVID, or undefined for a workload SVID. A workload SVID's session id has
 * the workload prefix and no stored session; anything else claims a task session, which must be stored.
 */
function callerSession(
  records: CallerRecords,
  id: string,
  context: Readonly<AgentContext>,
  now: Date,
): SessionRecord | undefined {
  const stored = records.sessions[0];
  const claimsSession =
    stored !== undefined ||
    context.delegation.length > 0 ||
    !context.sessionId.startsWith(WORKLOAD_SESSION_PREFIX);
  if (!claimsSession) return undefined;
  if (stored === undefined || stored.id !== context.sessionId) {
    throw new SessionUnknownError(
      `${id} presented the SVID of session ${context.sessionId.slice(0, 128)}, which this server does not know`,
    );
  }
  if (stored.spiffeId !== id || stored.entryId !== context.agentId) {
    throw new AuthorizationError(
      `${id} presented an SVID naming session ${stored.id}, which belongs to ${stored.spiffeId} (entry ${stored.entryId})`,
    );
  }
  assertChainLive(records, now);
  return stored;
}

/** The session and every one it descends from: live, and nothing it hangs on revoked. */
function assertChainLive(records: CallerRecords, now: Date): void {
  const { sessions: chain, revokedSessionSerials: revoked } = records;
  const session = chain[0]!;
  for (let hops = 0; ; hops++) {
    const s = chain[hops]!;
    assertLive(s, now);
    const what = s.id === session.id ? `session ${s.id}` : `session ${session.id} (under ${s.id})`;
    if (s.openerSerial === undefined) {
      throw new SessionUnknownError(
        `${what} was stored before this server recorded which SVID opened it: start a new session`,
      );
    }
    if (revoked.has(s.openerSerial)) {
      throw new RevokedError(`${what}: the SVID that opened it (serial ${s.openerSerial}) is revoked`);
    }
    if (s.parentCertSerial !== undefined && revoked.has(s.parentCertSerial)) {
      throw new RevokedError(
        `${what}: the parent certificate it was delegated with (serial ${s.parentCertSerial}) is revoked`,
      );
    }
    if (s.parentSessionId === undefined) return;
    if (hops >= MAX_ANCESTORS) {
      throw new SessionUnknownError(`${what}: no root within ${MAX_ANCESTORS} ancestors`);
    }
    const parent = chain[hops + 1];
    if (parent === undefined || parent.id !== s.parentSessionId) {
      throw new SessionUnknownError(
        `${what}: the session it was delegated from (${s.parentSessionId}) is no longer known`,
      );
    }
  }
}

function checkKind(kind: CallerKind, id: string, session: SessionRecord | undefined): void {
  if (session === undefined) {
    if (kind === 'session') {
      throw new NotASessionError(
        `${id} presented a workload SVID: call StartSession first and use the session SVID`,
      );
    }
    return;
  }
  switch (kind) {
    case 'session':
    case 'workload-or-session':
      return;
    case 'node':
      // A task session's SVID carries the agent's SPIFFE ID, but it is bounded by its session: accepting it
      // here would let it outlive the session's end.
      throw new NoMatchingEntryError(
        `${id} called with the SVID of task session ${session.id}: a node agent calls with the SVID it got from Attest`,
      );
    case 'admin':
      // A session is scoped, delegable task authority; admin rights are not scoped, so a delegated or
      // forgotten session of an admin entry would hand them on unbounded.
      throw new AuthorizationError(
        `${id} presented the SVID of session ${session.id}: admin calls need the entry's workload SVID`,
      );
    case 'workload':
      // A session SVID may not, say, open a fresh root session: that would shed its principal and limits.
      throw new AuthorizationError(
        `this call takes the workload SVID of ${id}, not the SVID of session ${session.id}`,
      );
  }
}

/** Refuses a session that ended (or whose ancestor ended: the end cascades) or expired. */
export function assertLive(session: SessionRecord, now: Date): void {
  if (session.endedAt !== undefined) {
    throw new SessionEndedError(
      `session ${session.id} ended at ${session.endedAt.toISOString()}${session.endReason ? ` (${session.endReason})` : ''}`,
    );
  }
  if (session.expiresAt.getTime() <= now.getTime()) {
    throw new SessionExpiredError(`session ${session.id} expired at ${session.expiresAt.toISOString()}`);
  }
}

/**
 * The entry an SVID was issued for, as it is now: deleting or expiring an entry, or pointing it at another
 * SPIFFE ID, is how an operator stops everything its SVIDs do at the server.
 */
function checkEntry(entry: Entry | undefined, entryId: string, spiffeId: string, now: Date): Entry {
  if (entry === undefined) {
    throw new NoMatchingEntryError(
      `the registration entry of ${spiffeId} (${entryId.slice(0, 128)}) was deleted: refused`,
    );
  }
  if (entry.spiffeId !== spiffeId) {
    throw new NoMatchingEntryError(
      `the registration entry ${entryId} now issues ${entry.spiffeId}, not ${spiffeId}: attest again`,
    );
  }
  if (entry.expiresAt !== undefined && entry.expiresAt.getTime() <= now.getTime()) {
    throw new NoMatchingEntryError(
      `the registration entry ${entryId} of ${spiffeId} expired at ${entry.expiresAt.toISOString()}: refused`,
    );
  }
  return entry;
}
