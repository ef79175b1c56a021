import * as grpc from '@grpc/grpc-js';
import * as tls from 'node:tls';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';
import { X509Bundle } from '../bundle';
import { SpiffeId } from '../spiffe';
import type { MarshaledX509Svid, X509Svid } from '../svid/x509-svid';
import { authorizeId, verifyX509Svid } from '../verify';

import { SERVER_ID_PATH } from '../internal/server-id';

export { SERVER_ID_PATH };

/**
 * Channel credentials for a Lanyard server: TLS that trusts only the bundle, and instead of a host-name check the
 * server's chain goes through our own verifier and must carry `spiffe://<td>/lanyard/server`. With `svid`, the
 * client presents it (mTLS: Renew and other calls that need the caller's identity).
 */
export function lanyardChannelCredentials(bundle: X509Bundle, svid?: X509Svid): grpc.ChannelCredentials {
  return channelCredentialsPresenting(bundle, svid?.marshal());
}

/**
 * lanyardChannelCredentials for a chain and key in PEM, presented as they are: not held to the X509-SVID
 * profile here (the server judges them). For callers that hold only the marshaled form.
 */
export function channelCredentialsPresenting(
  bundle: X509Bundle,
  identity?: MarshaledX509Svid<string>,
): grpc.ChannelCredentials {
  const serverId = SpiffeId.fromPath(bundle.trustDomain, SERVER_ID_PATH);
  const authorize = authorizeId(serverId);
  return grpc.credentials.createSsl(
    Buffer.from(bundle.toPem()),
    identity ? Buffer.from(identity.key) : null,
    identity ? Buffer.from(identity.certificates) : null,
    {
      checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
        try {
          authorize(verifyX509Svid(peerChain(cert), bundle, { trustDomain: bundle.trustDomain }));
          return undefined;
        } catch (e) {
          return e instanceof Error ? e : new Error(String(e));
        }
      },
    },
  );
}

/**
 * gRPC channel options for the credentials above. The SNI name is a fixed label: an IP address is not allowed as
 * SNI (RFC 6066) and the server's identity is checked by SPIFFE ID, never by name.
 */
export const LANYARD_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.ssl_target_name_override': 'lanyard-server',
};

/** DER chain, leaf first, from Node's detailed peer certificate (stops at the self-signed root). */
function peerChain(cert: PeerCertificate): Uint8Array[] {
  const out: Uint8Array[] = [];
  let c: PeerCertificate | undefined = cert;
  const seen = new Set<string>();
  while (c !== undefined && c.raw !== undefined && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(new Uint8Array(c.raw));
    const next: PeerCertificate | undefined = (c as DetailedPeerCertificate).issuerCertificate;
    c = next;
  }
  return out;
}

/**
 * Whether the server at `address` (host:port) presents a chain the bundle vouches for, checked with the same
 * verifier the channel uses. gRPC reports a failed check only as UNAVAILABLE with the TLS reason buried in its
 * details; this names it. Resolves when the chain verifies; rejects with the verifier's typed error when it
 * does not, or with the socket error when the server cannot be reached at all.
 */
export function checkServerTrust(address: string, bundle: X509Bundle, timeoutMs = 5_000): Promise<void> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(i + 1));
  const authorize = authorizeId(SpiffeId.fromPath(bundle.trustDomain, SERVER_ID_PATH));
  return new Promise((resolve, reject) => {
    // rejectUnauthorized off: the chain is judged below, by the SPIFFE verifier, so its error is the typed one.
    const socket = tls.connect({
      host,
      port,
      servername: 'lanyard-server',
      ALPNProtocols: ['h2'],
      rejectUnauthorized: false,
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)));
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      try {
        authorize(
          verifyX509Svid(peerChain(socket.getPeerCertificate(true)), bundle, {
            trustDomain: bundle.trustDomain,
          }),
        );
        resolve();
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      } finally {
        socket.destroy();
      }
    });
  });
}
