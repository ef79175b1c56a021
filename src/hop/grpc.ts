/**
 * grpc-js at a hop.
 *  - Server credentials from an X509Source: grpc-js's certificate-provider credentials (1.14), so a renewed SVID
 *    or bundle is swapped in with `setSecureContext` for new connections, the port stays bound and open
 *    connections (and their streams) keep going. Client certificates are requested, not judged by TLS.
 *  - `hopService` wraps every handler of a service: the peer's certificate (from `call.getAuthContext()`) is
 *    verified and authorized per call, with the method path as the action; refused calls end with the error's
 *    gRPC status and the stable code in the `lanyard-error-code` trailer; `hopPeerOf(call)` gives handlers the peer.
 *    Checking per call (not per connection) is what makes a revocation apply to the next call on an open channel;
 *    a call already running (a stream) ends with ERR_REVOKED (UNAUTHENTICATED) as soon as a notifying checker
 *    (a RevocationCache, a StaticRevocationList) reports its peer's SVID or session revoked (live-peers.ts).
 *  - Channel credentials that present the source's current SVID and check the server's SPIFFE ID in place of a
 *    host name, following rotation per new connection.
 *
 * grpc-js exposes only the peer's leaf; the chain is completed with the intermediates of the service's own SVID
 * (same trust domain, same CA) and any given in `intermediates`. SVIDs signed directly by a bundle root need none.
 */
import * as grpc from '@grpc/grpc-js';
import type { X509BundleSource } from '../bundle';
import type { X509Source } from '../client/x509-source';
import { isLanyardError } from '../errors';
import { ERROR_CODE_TRAILER, grpcStatusOf } from '../internal/grpc-status-map';
import type { Authorizer } from '../verify/authorize';
import { X509SourceCertificateProvider } from '../client/certificate-provider';
import { trackLivePeer } from './live-peers';
import {
  checkHopVerifyOptions,
  type HopPeer,
  type HopVerifyOptions,
  verifyHopPeer,
  verifyHopPeerSync,
} from './peer';
import { wrapMethods, type MethodInfo } from '../internal/method-wrap';
import { peerChainOf } from '../internal/peer-chain';

/** Trailing-metadata key with the stable Lanyard error code of a refusal (as the Lanyard server uses). */
export const HOP_ERROR_CODE_METADATA_KEY = ERROR_CODE_TRAILER;

/**
 * Channel options for `hopChannelCredentials`: the SNI is a fixed label, since an IP address is not a valid SNI
 * (RFC 6066) and the server is identified by SPIFFE ID, never by name.
 */
export const HOP_CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.ssl_target_name_override': 'lanyard-hop' };

/** Server credentials that follow the source: its SVID as identity, its bundle roots as requested CAs. */
export function hopServerCredentials(
  source: X509Source,
  options: { caTrustDomains?: readonly string[] } = {},
): grpc.ServerCredentials {
  const provider = new X509SourceCertificateProvider(source, options.caTrustDomains);
  // requireClientCertificate=false: TLS asks for the certificate but our verifier judges it, per call.
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

export interface HopGrpcServiceOptions extends Omit<HopVerifyOptions, 'bundles'> {
  source: X509Source;
  bundles?: X509BundleSource;
  /** DER intermediates to complete a peer's leaf with, besides the source SVID's own. */
  intermediates?: readonly Uint8Array[];
}

const agents = new WeakMap<object, HopPeer>();

// grpc-js hands out the peer certificate only when OpenSSL already chained it to the server's CA list (the
// bundle roots of `caTrustDomains`): a peer of a foreign domain or with an impostor CA looks certificate-less.
const NO_CERTIFICATE =
  "no client certificate that chains to this service's trust bundle: connect with an X509-SVID of a trusted domain";

/** The verified peer of a call that `hopService` accepted; undefined for any other call. */
export function hopPeerOf(call: object): HopPeer | undefined {
  return agents.get(call);
}

interface PeerCall {
  getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } };
}
type AnyHandler = (call: PeerCall, callback?: grpc.sendUnaryData<unknown>) => void;

/**
 * Wraps every method of `implementation` (through wrapMethods, the one per-method loop the server uses too) so
 * it runs only for verified, authorized peers. A method of the definition without a handler stays absent
 * (grpc-js refuses it as UNIMPLEMENTED).
 */
export function hopService<I extends grpc.UntypedServiceImplementation>(
  definition: grpc.ServiceDefinition,
  implementation: I,
  options: HopGrpcServiceOptions,
): I {
  const verify: HopVerifyOptions = checkHopVerifyOptions({
    ...options,
    bundles: options.bundles ?? options.source,
  });
  const guard = (method: MethodInfo, handler: AnyHandler): AnyHandler => {
    const answersWithCallback = !method.definition.responseStream;
    return (call, callback) => {
      const request = {
        transport: 'grpc' as const,
        action: method.path,
        noCertificateMessage: NO_CERTIFICATE,
      };
      verifyHopPeer(callChain(call, options), verify, request).then(
        (peer) => {
          agents.set(call, peer);
          const emitter = call as unknown as NodeJS.EventEmitter;
          // A revocation after the call started ends it with that status (a stream would otherwise run on).
          let answer = callback;
          const untrack = trackLivePeer(verify, request, peer, (reason) => {
            if (answersWithCallback) answer?.(hopErrorStatus(reason));
            else emitter.emit('error', hopErrorStatus(reason));
          });
          if (answersWithCallback && callback !== undefined) {
            let answered = false;
            answer = (err, value, trailer, flags) => {
              if (answered) return;
              answered = true;
              untrack();
              callback(err, value, trailer, flags);
            };
          }
          for (const event of ['cancelled', 'finish', 'close', 'error']) emitter.once(event, untrack);
          handler(call, answer);
        },
        (e: unknown) => {
          const status = hopErrorStatus(e);
          if (answersWithCallback) callback?.(status);
          else (call as unknown as NodeJS.EventEmitter).emit('error', status);
        },
      );
    };
  };
  // Every call type gets the same guard: it answers through the callback or the stream as the method does.
  const wrap = guard as unknown as <H>(method: MethodInfo, handler: H) => H;
  return wrapMethods({ definition, implementation }, { unary: wrap, serverStream: wrap, requestStream: wrap })
    .implementation as I;
}

function callChain(call: PeerCall, options: HopGrpcServiceOptions): Uint8Array[] {
  const leaf = call.getAuthContext().sslPeerCertificate?.raw;
  if (leaf === undefined || leaf.length === 0) return [];
  let own: Uint8Array[] = [];
  try {
    own = options.source
      .getX509Svid()
      .chain.slice(1)
      .map((c) => c.der);
  } catch {
    // Without a current SVID of its own the service still verifies peers whose leaf chains to a root.
  }
  return [new Uint8Array(leaf), ...own, ...(options.intermediates ?? [])];
}

/** A refusal as a gRPC status, with its stable code in the `lanyard-error-code` trailer. */
export function hopErrorStatus(e: unknown): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  if (isLanyardError(e)) {
    metadata.set(HOP_ERROR_CODE_METADATA_KEY, e.code);
    return { code: grpcStatusOf(e) as number as grpc.status, details: e.message, metadata };
  }
  return { code: grpc.status.INTERNAL, details: 'peer check failed', metadata };
}

export interface HopChannelOptions extends Omit<HopVerifyOptions, 'bundles' | 'authorize'> {
  source: X509Source;
  bundles?: X509BundleSource;
  /** Who the server must be (runs in the handshake, so synchronous): e.g. authorizeId(serviceA). */
  authorize: Authorizer;
  caTrustDomains?: readonly string[];
}

/** Channel credentials presenting the source's current SVID and checking the server by SPIFFE ID. */
export function hopChannelCredentials(options: HopChannelOptions): grpc.ChannelCredentials {
  const provider = new X509SourceCertificateProvider(options.source, options.caTrustDomains);
  const verify: HopVerifyOptions = checkHopVerifyOptions({
    ...options,
    bundles: options.bundles ?? options.source,
    // A client that trusts a domain's roots for its server (caTrustDomains) has chosen to call into it.
    federatedTrustDomains: [...(options.federatedTrustDomains ?? []), ...(options.caTrustDomains ?? [])],
  });
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, {
    checkServerIdentity: (_host, cert) => {
      try {
        verifyHopPeerSync(peerChainOf(cert), verify, { transport: 'grpc' });
        return undefined;
      } catch (e) {
        return e instanceof Error ? e : new Error(String(e));
      }
    },
  });
}
