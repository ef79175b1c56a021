/** The check every X509Source makes before it hands out its SVID. */
import { SourceNotReadyError } from '../errors';
import type { X509Svid } from '../svid/x509-svid';

/**
 * `svid` when it is still valid now; otherwise a SourceNotReadyError (retryable: a new SVID may arrive).
 * `missing` says why there is none; `expiredNote` is appended to the expiry message (how it came to expire).
 */
export function currentSvid(svid: X509Svid | undefined, missing: string, expiredNote = ''): X509Svid {
  if (svid === undefined) throw new SourceNotReadyError(missing);
  if (svid.notAfter.getTime() <= Date.now()) {
    throw new SourceNotReadyError(
      `the SVID of ${svid.id.toString()} expired at ${svid.notAfter.toISOString()}${expiredNote}`,
    );
  }
  return svid;
}
