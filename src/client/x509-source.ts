/**
 * The contract between whatever keeps a workload's SVID fresh (the server-backed source, the Workload API
 * source) and whatever uses it (the TLS, gRPC and HTTP hop helpers). Helpers take this interface, never a
 * concrete source, so a service works the same whether it attests itself or sits behind a node agent.
 */
import type { X509BundleSource } from '../bundle';
import type { LanyardError } from '../errors';
import type { X509Svid } from '../svid/x509-svid';

export interface X509SourceEvents {
  /** A new SVID or bundle is current; read them with the getters. */
  update: [];
  /** A refresh failed; the current SVID keeps serving until it expires. */
  error: [err: Error];
  /**
   * A task session's source is over for good (the session ended, expired or was revoked): it stopped, and its
   * getters throw `err` from now on. Workload sources never emit it.
   */
  ended: [err: LanyardError];
}

export interface X509Source extends X509BundleSource {
  /** @throws LanyardError when no SVID is current (not yet fetched, or expired without renewal). */
  getX509Svid(): X509Svid;
  on<E extends keyof X509SourceEvents>(event: E, listener: (...args: X509SourceEvents[E]) => void): this;
  off<E extends keyof X509SourceEvents>(event: E, listener: (...args: X509SourceEvents[E]) => void): this;
  /** Stops every timer and stream; the getters throw afterwards. Idempotent. */
  close(): Promise<void>;
}
