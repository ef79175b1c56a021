/**
 * The contract between whatever keeps a workload's SVID fresh (the server-backed source, the Workload API
 * source) and whatever uses it (the TLS, gRPC and HTTP hop helpers). Helpers take this interface, never a
 * concrete source, so a service works the same whether it attests itself or sits behind a node agent.
 */
import type { KeyObject } from 'node:crypto';
import type { X509BundleSource } from '../bundle';
import type { SpiffeId } from '../spiffe';
import type { AgentContext } from '../x509/agent-context/types';
import type { ParsedCertificate } from '../x509/certificate';

/** The workload's own current identity. Immutable: a rotation produces a new object. */
export interface X509Svid {
  readonly id: SpiffeId;
  /** Leaf first, then intermediates up to (not including) a bundle root. */
  readonly chain: readonly ParsedCertificate[];
  /** Never leaves the process. */
  readonly privateKey: KeyObject;
  /** The agent context the SVID carries, when it carries one. */
  readonly context?: Readonly<AgentContext>;
  readonly notAfter: Date;
  /**
   * The chain as PEM CERTIFICATE blocks (leaf first) and the key as one PKCS#8 PEM block, as go-spiffe's
   * Marshal: what parseX509Svid reads back, and what svid.pem / svid_key.pem hold.
   */
  marshal(): MarshaledX509Svid<string>;
  /** DER: the certificates back to back (leaf first) and the PKCS#8 key, as go-spiffe's MarshalRaw. */
  marshalRaw(): MarshaledX509Svid<Uint8Array>;
}

/** An SVID in transferable form. `key` is the private key: write it 0600 and never log it. */
export interface MarshaledX509Svid<T> {
  readonly certificates: T;
  readonly key: T;
}

export interface X509SourceEvents {
  /** A new SVID or bundle is current; read them with the getters. */
  update: [];
  /** A refresh failed; the current SVID keeps serving until it expires. */
  error: [err: Error];
}

export interface X509Source extends X509BundleSource {
  /** @throws LanyardError when no SVID is current (not yet fetched, or expired without renewal). */
  getX509Svid(): X509Svid;
  on<E extends keyof X509SourceEvents>(event: E, listener: (...args: X509SourceEvents[E]) => void): this;
  off<E extends keyof X509SourceEvents>(event: E, listener: (...args: X509SourceEvents[E]) => void): this;
  /** Stops every timer and stream; the getters throw afterwards. Idempotent. */
  close(): Promise<void>;
}
