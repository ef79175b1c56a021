/**
 * The steps every call that opens a session shares (StartSession and RedeemGrant): who is asking and for
 * which key, signing the session SVID for that key, and storing the session with its first certificate.
 * One copy, so that a change to how a session is opened cannot reach one of the two calls and not the other.
 */
import type { SignedX509Svid } from '../../ca';
import type { Bundle, X509Svid } from '../../gen/lanyard/v1/types';
import type { StoreOps } from '../../store/store';
import type { NewSession } from '../../store/types';
import type { AgentContext } from '../../x509/agent-context/types';
import type { ParsedCsr } from '../../x509/csr';
import { resolveCaller, type CallerOf } from '../auth/resolve-caller';
import { bundleToProto } from '../bundle/to-proto';
import { signSessionSvid } from '../issuance/session-svid';
import { svidToProto } from '../issuance/workload-svid';
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
  await tx.addSessionCertificate(session.id, signed.cert.serialHex, signed.cert.notAfter);
  return { svid: svidToProto(signed, entry), bundle: bundleToProto(signed.bundle) };
}
