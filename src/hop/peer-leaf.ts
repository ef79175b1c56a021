/**
 * The DER of a TLS server connection's peer leaf, read once per connection by the server-side hop helpers.
 *
 * Node 20 has no accessor for the peer's DER alone. `getPeerCertificate(false)` converts the whole leaf into an
 * object (names, extensions printed, three fingerprints, the EC key converted to a legacy key): about 75-100 µs
 * of a handshake's 2 ms of server CPU here. `getPeerX509Certificate()` copies and re-decodes every intermediate
 * the peer sent (and takes them out of the connection's chain), about twice that. `getSession()` serializes the
 * connection's session, which holds the very certificate OpenSSL reports as the peer's
 * (`SSL_get_peer_certificate` is `session->peer`) as the `[3] EXPLICIT` field of the session's outer SEQUENCE
 * (OpenSSL's and BoringSSL's SSL_SESSION encoding alike), already encoded: about 13 µs.
 *
 * The session also holds its master secret, so the serialized copy is zeroed as soon as the certificate's bytes
 * are copied out, whatever happens, and nothing of it is kept or logged. Whatever does not read as expected (no
 * session, no `[3]` field, a malformed length) falls back to `getPeerCertificate(false)`, so a peer without a
 * certificate is still reported by Node's own accessor and the verifier judges whatever was read either way.
 */
import type { TLSSocket } from 'node:tls';

/** The peer leaf of `socket` as DER; undefined when it presented none (or the socket is gone). */
export function peerLeafDer(socket: TLSSocket): Uint8Array | undefined {
  const session = socket.getSession();
  if (session !== undefined) {
    try {
      const leaf = certificateOfSession(session);
      if (leaf !== undefined) return leaf;
    } finally {
      session.fill(0);
    }
  }
  // Null once the socket is gone: then there is no certificate to verify.
  const raw = (socket.getPeerCertificate(false) as { raw?: Buffer } | null)?.raw;
  return raw === undefined || raw.length === 0 ? undefined : new Uint8Array(raw);
}

/**
 * The `[3] EXPLICIT Certificate` field of an SSL_SESSION's DER, copied out; undefined when there is none or
 * the bytes do not read as DER lengths within bounds. Exported for its tests.
 */
export function certificateOfSession(der: Uint8Array): Uint8Array | undefined {
  if (der[0] !== SEQUENCE) return undefined;
  const outer = valueAt(der, 0, der.length);
  if (outer === undefined) return undefined;
  let at = outer.start;
  while (at < outer.end) {
    const field = valueAt(der, at, outer.end);
    if (field === undefined) return undefined;
    if (der[at] === PEER_TAG) {
      if (der[field.start] !== SEQUENCE) return undefined;
      const cert = valueAt(der, field.start, field.end);
      // The certificate must fill the explicit field exactly.
      if (cert === undefined || cert.end !== field.end) return undefined;
      // A copy (Buffer's own slice would be a view of the bytes about to be zeroed).
      return new Uint8Array(der.subarray(field.start, field.end));
    }
    at = field.end;
  }
  return undefined;
}

/** `[3]` constructed, context-specific: the session's peer certificate. */
const PEER_TAG = 0xa3;
const SEQUENCE = 0x30;

/** Where the value of the TLV at `at` starts and ends, within `limit`; undefined when it does not fit. */
function valueAt(der: Uint8Array, at: number, limit: number): { start: number; end: number } | undefined {
  if (at + 2 > limit) return undefined;
  let length = der[at + 1]!;
  let start = at + 2;
  if (length > 0x7f) {
    const n = length & 0x7f;
    // Definite lengths of up to 3 bytes (16 MiB) are all a session can hold; 0x80 (indefinite) is not DER.
    if (n === 0 || n > 3 || start + n > limit) return undefined;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + der[start + i]!;
    start += n;
  }
  const end = start + length;
  return end > limit ? undefined : { start, end };
}
