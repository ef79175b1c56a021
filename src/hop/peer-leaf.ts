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
      // The typed array's own fill: Buffer's validates its arguments in JavaScript first.
      Uint8Array.prototype.fill.call(session, 0);
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
  const outerStart = valueStart(der, 0, der.length);
  if (outerStart < 0) return undefined;
  const outerEnd = outerStart + valueLength(der, 0);
  let at = outerStart;
  while (at < outerEnd) {
    const start = valueStart(der, at, outerEnd);
    if (start < 0) return undefined;
    const end = start + valueLength(der, at);
    if (der[at] === PEER_TAG) {
      if (der[start] !== SEQUENCE) return undefined;
      const certStart = valueStart(der, start, end);
      // The certificate must fill the explicit field exactly.
      if (certStart < 0 || certStart + valueLength(der, start) !== end) return undefined;
      // A copy in one step (Buffer's own slice would be a view of the bytes about to be zeroed).
      return Uint8Array.prototype.slice.call(der, start, end);
    }
    at = end;
  }
  return undefined;
}

/** `[3]` constructed, context-specific: the session's peer certificate. */
const PEER_TAG = 0xa3;
const SEQUENCE = 0x30;

/**
 * Where the value of the TLV at `at` starts, when its length octets are DER a session can hold (definite, up to
 * three octets) and the value ends within `limit`; -1 otherwise. Numbers only: this runs once per handshake, in
 * code too cold to be optimized, where every allocation shows.
 */
function valueStart(der: Uint8Array, at: number, limit: number): number {
  if (at + 2 > limit) return -1;
  const first = der[at + 1]!;
  const n = first > 0x7f ? first & 0x7f : 0;
  // 0x80 (indefinite) is not DER; more than three length octets (16 MiB) no session holds.
  if (first > 0x7f && (n === 0 || n > 3)) return -1;
  const start = at + 2 + n;
  if (start > limit || start + valueLength(der, at) > limit) return -1;
  return start;
}

/** The length of the value of the TLV at `at`, whose length octets valueStart accepted (or is checking). */
function valueLength(der: Uint8Array, at: number): number {
  const first = der[at + 1]!;
  if (first < 0x80) return first;
  let length = 0;
  for (let i = 0; i < (first & 0x7f); i++) length = length * 256 + (der[at + 2 + i] ?? 0);
  return length;
}
