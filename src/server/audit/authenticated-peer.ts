/**
 * The caller's SVID as the call's own authentication verified it, handed to the audit wrapper so that the record
 * names the caller from that one verification instead of verifying the same certificate a second time.
 *
 * This is a hand-off, not a cache: the only writer is the authentication itself (`resolveCaller`, right after its
 * `verifyPeerSvid` passed), the value lives on the one call object it was made for and goes with it, and the only
 * reader is the audit wrapper of that call, which uses it to *name* the caller, never to admit one. It has no
 * validity rules of its own because nothing decides on it later: the answer is the one the call was authenticated
 * with, made against the same CA the wrapper would use (the wrapper checks that it is the same CaManager). A call
 * whose authentication refused or never ran gets nothing here, and the wrapper verifies the certificate itself,
 * as before (an unverifiable caller is recorded as `unverified:<what it claims>`).
 */
import type { CaManager } from '../../ca';
import type { VerifyX509SvidResult } from '../../verify';

/** What the authentication noted: the verified peer and the CA it was verified against. */
interface AuthenticatedPeer {
  readonly ca: CaManager;
  readonly peer: VerifyX509SvidResult;
}

/**
 * A property under a symbol no other module holds, on the call object: it goes with the call and is never shared
 * between two calls. Not a WeakMap: in the fifth round a new WeakMap key per call was measured to cost about as
 * much as the second verification this replaces.
 */
const AUTHENTICATED = Symbol('lanyard.authenticatedPeer');

type Holder = { [AUTHENTICATED]?: AuthenticatedPeer };

/** Called by the authentication once `peer` verified for `call` against `ca`. */
export function noteAuthenticatedPeer(call: object, ca: CaManager, peer: VerifyX509SvidResult): void {
  // A call object that cannot take the property (frozen: not grpc-js's) is verified again by the wrapper.
  if (Object.isExtensible(call)) (call as Holder)[AUTHENTICATED] = { ca, peer };
}

/** The peer the call's authentication verified against `ca`, or undefined (refused, not run, another CA). */
export function authenticatedPeerOf(call: object, ca: CaManager): VerifyX509SvidResult | undefined {
  const noted = (call as Holder)[AUTHENTICATED];
  return noted !== undefined && noted.ca === ca ? noted.peer : undefined;
}
