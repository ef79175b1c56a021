/**
 * TLS credentials of the public listener, fed from the CA: the server's own SVID as identity and the trust
 * bundle as the CAs whose client certificates are requested.
 *
 * Why grpc-js's certificate-provider credentials (experimental.createCertificateProviderServerCredentials,
 * present in 1.14): the server reacts to every provider update with `setSecureContext`, so a renewed server
 * SVID or a rotated bundle applies to new connections without re-binding the port; open connections keep
 * the context they were made with, as TLS requires.
 *
 * Client certificates are requested but not required (rejectUnauthorized=false keeps the connection up when
 * OpenSSL refuses one against the bundle): Attest runs over server-authenticated TLS, while Renew and remote
 * admin calls verify the presented SVID again with verifyX509Svid (see peer-svid.ts) — the same verifier
 * users get, with SPIFFE rules OpenSSL does not know. A certificate OpenSSL refused is never accepted.
 */
import * as grpc from '@grpc/grpc-js';
import type { CaManager } from '../../ca';
import type { X509Bundle } from '../../bundle/x509-bundle';
import { serverTlsPem, type ServerSvid } from '../../ca';

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/**
 * A grpc-js CertificateProvider that follows the CA's server SVID and bundle.
 *
 * The first update after a listener is added is delivered in a microtask, not synchronously: grpc-js
 * 1.14 subscribes to the provider before it registers the server's watcher, so a synchronous first update
 * would be lost and the listener would drop every connection ("credentials not loaded").
 */
export class CaCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private unsubscribe: (() => void)[] = [];

  constructor(private readonly ca: CaManager) {}

  /** Subscribes to the CA's change events; call once the CA is open. */
  start(): void {
    this.unsubscribe = [
      this.ca.onServerSvidChange((svid) => this.emitIdentity(svid)),
      this.ca.onBundleChange((bundle) => this.emitCa(bundle)),
    ];
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
    this.unsubscribe = [];
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    const update = caUpdate(this.ca.bundle());
    queueMicrotask(() => this.caListeners.has(listener) && listener(update));
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    const update = identityUpdate(this.ca.serverSvid());
    queueMicrotask(() => this.identityListeners.has(listener) && listener(update));
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  private emitIdentity(svid: ServerSvid): void {
    const update = identityUpdate(svid);
    for (const l of this.identityListeners) l(update);
  }
  private emitCa(bundle: X509Bundle): void {
    const update = caUpdate(bundle);
    for (const l of this.caListeners) l(update);
  }
}

function identityUpdate(svid: ServerSvid): { certificate: Buffer; privateKey: Buffer } {
  // The key is exported only to hand it to the TLS stack; it never leaves the process.
  const { cert, key } = serverTlsPem(svid);
  return { certificate: Buffer.from(cert), privateKey: Buffer.from(key) };
}

function caUpdate(bundle: X509Bundle): { caCertificate: Buffer } {
  return { caCertificate: Buffer.from(bundle.toPem()) };
}

/**
 * The public listener's credentials. grpc-js's declaration names the first parameter
 * `caCertificateProvider` but passes it on as the identity provider (1.14 implementation); the same object
 * serves both roles here, so the mix-up cannot bite.
 */
export function publicListenerCredentials(provider: CaCertificateProvider): grpc.ServerCredentials {
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}
