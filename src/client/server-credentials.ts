import * as grpc from '@grpc/grpc-js';
import * as tls from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import { X509Bundle } from '../bundle';
import { SpiffeId } from '../spiffe';
import type { MarshaledX509Svid, X509Svid } from '../svid/x509-svid';
import { authorizeId, verifyX509Svid } from '../verify';

import { peerChainOf } from '../internal/peer-chain';
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
  // Made once per credentials: every handshake of the channel checks with the same options.
  const verifyOptions = Object.freeze({ trustDomain: bundle.trustDomain });
  return grpc.credentials.createSsl(
    Buffer.from(bundle.toPem()),
    identity ? Buffer.from(identity.key) : null,
    identity ? Buffer.from(identity.certificates) : null,
    {
      checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
        try {
          // The chain Node has just read for this check, as views of its buffers (peer-chain.ts).
          authorize(verifyX509Svid(peerChainOf(cert), bundle, verifyOptions));
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
  // As on the server's listeners: grpc-js counts every call for channelz unless told not to, and nothing in an
  // agent or a relying party serves the channelz service that would read the counts.
  'grpc.enable_channelz': 0,
};

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
          verifyX509Svid(peerChainOf(socket.getPeerCertificate(true)), bundle, {
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
