/**
 * What a hop helper (TLS, gRPC, HTTP) decided about one peer. Helpers report every decision, accept or refuse,
 * through an `onDecision` callback; the audit trail turns these into records. Holds identifiers only: no
 * payloads, headers or keys (data minimisation).
 */
import type { AgentContext } from '../x509/agent-context/types';

export type HopTransport = 'tls' | 'grpc' | 'http';

export interface HopDecision {
  at: Date;
  transport: HopTransport;
  /** The service that made the decision (its own SPIFFE ID when it has one). */
  service: string;
  /** gRPC method path, or `METHOD /route` for HTTP; undefined for a bare TLS handshake. */
  action?: string;
  decision: 'allow' | 'deny';
  /** A stable LanyardError code or policy reason for a refusal; undefined when allowed. */
  reason?: string;
  /** The peer's SPIFFE ID when its certificate got far enough to have one. */
  peerId?: string;
  /** Serial of the peer's leaf certificate, lowercase hex. */
  peerSerial?: string;
  /**
   * The peer's verified agent context, when its SVID carried one and passed path validation, the SVID rules and
   * the context rules: on an accept, on a policy refusal, and on a revocation refusal (the context is proven
   * by the CA's signature; only its freshness failed). Never from an SVID that failed any other check.
   */
  context?: Readonly<AgentContext>;
  /** Content hash of the policy set that decided, when a policy was evaluated. */
  policyVersion?: string;
}

export type HopDecisionListener = (decision: HopDecision) => void;
