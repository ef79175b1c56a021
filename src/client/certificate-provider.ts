/**
 * A grpc-js CertificateProvider fed by an X509Source: the identity is the source's current SVID, the CA list
 * the bundle roots of the trust domains the caller names. grpc-js (1.14) builds a new secure context from each
 * update and swaps it in place (`setSecureContext` on servers, per connection on channels), so a renewed SVID
 * or a rotated bundle applies to new connections while open ones keep theirs.
 *
 * The first update after a listener is added comes in a microtask: grpc-js subscribes before it registers its
 * own watcher, and an update delivered synchronously would be lost (see src/server/tls/svid-credentials.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import type { X509Source } from './x509-source';
import { TrustDomain } from '../spiffe';
import { encodePem } from '../x509/pem';

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

export class X509SourceCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly onUpdate = (): void => this.push();
  private subscribed = false;

  /**
   * @param trustDomains whose roots go into the CA list; default the trust domain of the source's SVID.
   */
  constructor(
    private readonly source: X509Source,
    private readonly trustDomains?: readonly (TrustDomain | string)[],
  ) {}

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    this.subscribe();
    const update = this.caUpdate();
    queueMicrotask(() => this.caListeners.has(listener) && listener(update));
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
    this.maybeUnsubscribe();
  }
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    this.subscribe();
    const update = this.identityUpdate();
    queueMicrotask(() => this.identityListeners.has(listener) && listener(update));
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
    this.maybeUnsubscribe();
  }

  private subscribe(): void {
    if (this.subscribed) return;
    this.subscribed = true;
    this.source.on('update', this.onUpdate);
  }
  private maybeUnsubscribe(): void {
    if (!this.subscribed || this.caListeners.size + this.identityListeners.size > 0) return;
    this.subscribed = false;
    this.source.off('update', this.onUpdate);
  }

  private push(): void {
    if (this.caListeners.size > 0) {
      const ca = this.caUpdate();
      for (const l of this.caListeners) l(ca);
    }
    if (this.identityListeners.size > 0) {
      const id = this.identityUpdate();
      for (const l of this.identityListeners) l(id);
    }
  }

  private identityUpdate(): { certificate: Buffer; privateKey: Buffer } | null {
    try {
      const svid = this.source.getX509Svid();
      // Exported only to hand it to the TLS stack inside this process.
      const key = svid.privateKey.export({ type: 'pkcs8', format: 'pem' });
      return {
        certificate: Buffer.from(svid.chain.map((c) => encodePem('CERTIFICATE', c.der)).join('')),
        privateKey: Buffer.from(key),
      };
    } catch {
      // No current SVID: grpc-js then refuses new connections instead of serving a stale identity.
      return null;
    }
  }

  private caUpdate(): { caCertificate: Buffer } | null {
    const pem = rootsPem(this.source, this.trustDomains);
    return pem === '' ? null : { caCertificate: Buffer.from(pem) };
  }
}

/** PEM of the bundle roots of `trustDomains` (default: the source SVID's own); '' when there are none. */
export function rootsPem(source: X509Source, trustDomains?: readonly (TrustDomain | string)[]): string {
  let tds: TrustDomain[];
  if (trustDomains !== undefined) {
    tds = trustDomains.map((t) => (t instanceof TrustDomain ? t : TrustDomain.parse(t)));
  } else {
    try {
      tds = [source.getX509Svid().id.trustDomain];
    } catch {
      return '';
    }
  }
  return tds.map((td) => source.getX509BundleForTrustDomain(td)?.toPem() ?? '').join('');
}
