/**
 * The steps every call that opens a session shares (StartSession, RedeemGrant and its cross-domain form): who
 * is asking and for which key, signing the session SVID for that key, and storing the session with its first
 * certificate. One copy, so that a change to how a session is opened cannot reach one call and not the others.
 */
import type { SignedX509Svid } from '../../ca';
import type { Bundle, X509Svid } from '../../gen/lanyard/v1/types';
import type { StoreOps } from '../../store/store';
import type { NewSession } from '../../store/types';
import { sha256 } from '../../internal/digest';
import { applyIssuancePolicy } from '../../policy';
import type { AgentContext, AgentContextVersion, DelegationLink } from '../../x509/agent-context/types';
import type { ParsedCsr } from '../../x509/csr';
import { resolveCaller, type CallerOf } from '../auth/resolve-caller';
import { bundleToProto } from '../bundle/to-proto';
import { secondsUntil, signSessionSvid } from '../issuance/session-svid';
import { wholeSeconds } from '../issuance/workload-context';
import { svidToProto, svidTtlSeconds } from '../issuance/workload-svid';
import type { PeerCall } from '../tls/peer-svid';
import type { SessionDeps } from './deps';

export interface SessionOpener {
  /** The one instant the whole call is judged at. */
  now: Date;
  caller: CallerOf<'workload'>;
  /** The key the session SVID is for. */
  csr: ParsedCsr;
}

/**
 * The caller over its own workload SVID (a session SVID, ended or not, opens no session: that would shed its
 * principal and delegation limits), then its CSR.
 */
export async function resolveSessionOpener(
  deps: SessionDeps,
  call: PeerCall,
  csr: Uint8Array,
): Promise<SessionOpener> {
  const now = deps.clock();
  const caller = await resolveCaller(deps, call, 'workload', now);
  return { now, caller, csr: await deps.ca.checkCsr(csr) };
}

/** The session SVID for the opener's entry and key. */
export function signOpenerSvid(
  deps: SessionDeps,
  opener: SessionOpener,
  context: AgentContext,
  ttlSeconds: number,
): Promise<SignedX509Svid> {
  return signSessionSvid(deps.ca, {
    entry: opener.caller.entry,
    publicKey: opener.csr.publicKey,
    context,
    ttlSeconds,
    now: opener.now,
  });
}

/** What the call decides about the new session; the rest follows from the opener. */
export type OpenedSession = Omit<NewSession, 'entryId' | 'spiffeId' | 'openerSerial'>;

/**
 * Stores the session (held by the opener's entry) and its first certificate through `tx` (the caller's
 * transaction, so both commit with the rest of the call or neither does) and returns the SVID and bundle
 * that answer the call.
 */
export async function storeOpenedSession(
  tx: StoreOps,
  opener: SessionOpener,
  session: OpenedSession,
  signed: SignedX509Svid,
): Promise<{ svid: X509Svid; bundle: Bundle }> {
  const { entry, leaf } = opener.caller;
  await tx.createSession({
    ...session,
    entryId: entry.id,
    spiffeId: entry.spiffeId,
    // Revoking the workload SVID that opened the session (started it, or redeemed the grant) stops the
    // session at the server too.
    openerSerial: leaf.serialHex,
  });
  await tx.addSessionCertificate(session.id, signed.leaf.serialHex, signed.leaf.notAfter);
  return { svid: svidToProto(signed, entry), bundle: bundleToProto(signed.bundle) };
}

/**
 * The depth limit (the longest chain, in hops, any session under it may reach) of a session opened at `depth` by
 * redeeming a grant: the smallest of what the chain above allows (`inherited`), of what the redeemer's own entry
 * allows from here (`entryMax` further hops), and of the grant's own bound (`grantMaxDepth` further hops, when
 * the parent set one). Every redemption path computes it here, so a bound cannot reach one path and not another.
 */
export function delegatedDepthLimit(d: {
  depth: number;
  inherited: number;
  entryMax: number;
  grantMaxDepth?: number | undefined;
}): number {
  const limits = [d.inherited, d.depth + d.entryMax];
  if (d.grantMaxDepth !== undefined) limits.push(d.depth + d.grantMaxDepth);
  return Math.min(...limits);
}

/** What a redemption decided about the delegated session it opens, its checks all passed. */
export interface DelegatedOpening {
  /** The parent's verified context: the new one keeps its principal, root session and intent. */
  parentContext: AgentContext;
  /** The parent-signed link the new context appends; its binding's scopes are the new session's. */
  link: DelegationLink;
  sessionId: string;
  /** Absent: the parent's context version. */
  version?: AgentContextVersion;
  /** The provenance method, and the bytes (the binding) its evidence hash covers. */
  method: string;
  evidenceDer: Uint8Array;
  /** When the session ends: no SVID of it lives past this. */
  expiresAt: Date;
  /** Names the grant in a lifetime refusal. */
  what: string;
  /** What the session row holds beyond what follows from the parent's context. */
  session: Pick<OpenedSession, 'depth' | 'depthLimit' | 'parentSessionId' | 'parentCertSerial'>;
}

/**
 * The delegated context (narrowed by the issuance policy, kind "delegation"), its SVID for the opener's key,
 * and the session row with its first certificate, through `tx`.
 */
export async function openDelegatedSession(
  deps: SessionDeps,
  tx: StoreOps,
  opener: SessionOpener,
  d: DelegatedOpening,
): Promise<{ svid: X509Svid; bundle: Bundle; sessionId: string; expiresAt: Date }> {
  const { entry } = opener.caller;
  const context: AgentContext = applyIssuancePolicy(
    deps.policy,
    entry.spiffeId,
    {
      ...d.parentContext,
      ...(d.version !== undefined ? { version: d.version } : {}),
      agentId: entry.id,
      sessionId: d.sessionId,
      scopes: [...d.link.binding.scopes],
      provenance: {
        method: d.method,
        evidenceSha256: sha256(d.evidenceDer),
        issuer: deps.ca.serverSvid().id.toString(),
        issuedAt: wholeSeconds(opener.now),
      },
      delegation: [...d.parentContext.delegation, d.link],
    },
    'delegation',
  );
  const ttlSeconds = secondsUntil(
    opener.now,
    d.expiresAt,
    svidTtlSeconds(entry, deps.defaultTtlSeconds),
    d.what,
  );
  const signed = await signOpenerSvid(deps, opener, context, ttlSeconds);
  const answer = await storeOpenedSession(
    tx,
    opener,
    {
      ...d.session,
      id: d.sessionId,
      rootSessionId: d.parentContext.rootSessionId,
      principal: { ...d.parentContext.principal },
      intent: d.parentContext.intent,
      scopes: [...context.scopes],
      expiresAt: d.expiresAt,
    },
    signed,
  );
  return { ...answer, sessionId: d.sessionId, expiresAt: signed.leaf.notAfter };
}
