/**
 * The gRPC edge's one table: the status every Lanyard error code is reported with. Servers, the node agent's
 * Workload API and the hop interceptors answer with it; library errors carry no transport status of their own.
 * Numeric values from the gRPC spec, so this module (and a verifier that never speaks gRPC) does not load
 * grpc-js.
 */
import {
  type AnyLanyardError,
  errorFromCode,
  isLanyardErrorCode,
  type LanyardError,
  type LanyardErrorCode,
} from '../errors';

/** The trailing-metadata key every Lanyard gRPC edge puts the stable error code in. */
export const ERROR_CODE_TRAILER = 'lanyard-error-code';

/** gRPC status codes (numeric values from the gRPC spec). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** The gRPC status of every code. Typed as a complete record, so a new code cannot ship without one. */
export const grpcStatusByCode: Readonly<Record<LanyardErrorCode, GrpcStatusCode>> = {
  ERR_INVALID_SPIFFE_ID: GrpcStatus.INVALID_ARGUMENT,
  ERR_INVALID_TRUST_DOMAIN: GrpcStatus.INVALID_ARGUMENT,
  ERR_INVALID_BUNDLE: GrpcStatus.INVALID_ARGUMENT,
  ERR_BUNDLE_NOT_FOUND: GrpcStatus.UNAUTHENTICATED,
  ERR_MALFORMED_CERTIFICATE: GrpcStatus.INVALID_ARGUMENT,
  ERR_MALFORMED_CSR: GrpcStatus.INVALID_ARGUMENT,
  ERR_CSR_SIGNATURE_INVALID: GrpcStatus.INVALID_ARGUMENT,
  ERR_UNSUPPORTED_KEY: GrpcStatus.INVALID_ARGUMENT,
  ERR_UNSUPPORTED_ALGORITHM: GrpcStatus.INVALID_ARGUMENT,
  ERR_MALFORMED_PEM: GrpcStatus.INVALID_ARGUMENT,
  ERR_MALFORMED_AGENT_CONTEXT: GrpcStatus.INVALID_ARGUMENT,
  ERR_AGENT_CONTEXT_TOO_LARGE: GrpcStatus.INVALID_ARGUMENT,
  ERR_UNSUPPORTED_AGENT_CONTEXT_VERSION: GrpcStatus.INVALID_ARGUMENT,
  // The peer's certificate is not one this side can accept as it is configured, like ERR_SVID_INVALID.
  ERR_AGENT_CONTEXT_OID_MISMATCH: GrpcStatus.UNAUTHENTICATED,
  ERR_INVALID_AGENT_CONTEXT_OID: GrpcStatus.INVALID_ARGUMENT,
  ERR_CHAIN_EMPTY: GrpcStatus.UNAUTHENTICATED,
  ERR_CHAIN_TOO_LONG: GrpcStatus.UNAUTHENTICATED,
  ERR_UNKNOWN_AUTHORITY: GrpcStatus.UNAUTHENTICATED,
  ERR_SIGNATURE_INVALID: GrpcStatus.UNAUTHENTICATED,
  ERR_CERT_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  ERR_CERT_NOT_YET_VALID: GrpcStatus.UNAUTHENTICATED,
  ERR_NOT_A_CA: GrpcStatus.UNAUTHENTICATED,
  ERR_PATH_LEN_EXCEEDED: GrpcStatus.UNAUTHENTICATED,
  ERR_KEY_USAGE_INVALID: GrpcStatus.UNAUTHENTICATED,
  ERR_UNKNOWN_CRITICAL_EXTENSION: GrpcStatus.UNAUTHENTICATED,
  ERR_NAME_CONSTRAINTS_VIOLATED: GrpcStatus.UNAUTHENTICATED,
  ERR_CERT_PROFILE_INVALID: GrpcStatus.UNAUTHENTICATED,
  ERR_SVID_INVALID: GrpcStatus.UNAUTHENTICATED,
  ERR_SVID_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  ERR_WRONG_TRUST_DOMAIN: GrpcStatus.UNAUTHENTICATED,
  ERR_SCOPE_ESCALATION: GrpcStatus.PERMISSION_DENIED,
  ERR_LIFETIME_ESCALATION: GrpcStatus.PERMISSION_DENIED,
  ERR_DELEGATION_TOO_DEEP: GrpcStatus.PERMISSION_DENIED,
  ERR_ROOT_CHANGED: GrpcStatus.PERMISSION_DENIED,
  ERR_DELEGATION_LINK_INVALID: GrpcStatus.UNAUTHENTICATED,
  ERR_DELEGATION_SIGNATURE_INVALID: GrpcStatus.UNAUTHENTICATED,
  // Like ERR_WRONG_TRUST_DOMAIN: a CA vouched for something outside its trust domain.
  ERR_CONTEXT_FOREIGN_DOMAIN: GrpcStatus.UNAUTHENTICATED,
  ERR_PARENT_CHAIN_INVALID: GrpcStatus.UNAUTHENTICATED,
  ERR_REVOKED: GrpcStatus.UNAUTHENTICATED,
  // Not the peer's fault: the verifier cannot currently answer; it may once its feed is back.
  ERR_REVOCATION_STALE: GrpcStatus.UNAVAILABLE,
  ERR_UNAUTHORIZED: GrpcStatus.PERMISSION_DENIED,
  ERR_INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  ERR_IO: GrpcStatus.UNAVAILABLE,
  ERR_INTERNAL: GrpcStatus.INTERNAL,
  ERR_INVALID_CONFIG: GrpcStatus.INVALID_ARGUMENT,
  ERR_NOT_FOUND: GrpcStatus.NOT_FOUND,
  ERR_ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  // ABORTED, not FAILED_PRECONDITION: gRPC reserves ABORTED for a failed test-and-set that the client should
  // retry by re-reading (read-modify-write), which is exactly a stale revision.
  ERR_REVISION_CONFLICT: GrpcStatus.ABORTED,
  ERR_STORE_CLOSED: GrpcStatus.UNAVAILABLE,
  ERR_STORE_SCHEMA_TOO_NEW: GrpcStatus.FAILED_PRECONDITION,
  // A bad join token is failed authentication of the attesting runtime, whatever the reason.
  ERR_TOKEN_INVALID: GrpcStatus.UNAUTHENTICATED,
  ERR_TOKEN_EXPIRED: GrpcStatus.UNAUTHENTICATED,
  ERR_TOKEN_SPENT: GrpcStatus.UNAUTHENTICATED,
  // Not started, closed, or no usable signing CA: a retry later (or on another server) may succeed.
  ERR_CA_NOT_READY: GrpcStatus.UNAVAILABLE,
  // `activate` without a prepared CA: the operator runs `prepare` first.
  ERR_CA_NOT_PREPARED: GrpcStatus.FAILED_PRECONDITION,
  ERR_CA_SELF_TEST_FAILED: GrpcStatus.INTERNAL,
  ERR_KEY_FILE_INSECURE: GrpcStatus.FAILED_PRECONDITION,
  ERR_KEY_UNREADABLE: GrpcStatus.DATA_LOSS,
  // An attestor this server does not know or has not enabled: the service does not offer that method.
  ERR_ATTESTOR_UNKNOWN: GrpcStatus.UNIMPLEMENTED,
  ERR_MALFORMED_EVIDENCE: GrpcStatus.INVALID_ARGUMENT,
  // Evidence that parses but does not authenticate the runtime, like a bad join token.
  ERR_TOKEN_NOT_YET_VALID: GrpcStatus.UNAUTHENTICATED,
  ERR_TOKEN_AUDIENCE_MISMATCH: GrpcStatus.UNAUTHENTICATED,
  ERR_TOKEN_ISSUER_MISMATCH: GrpcStatus.UNAUTHENTICATED,
  ERR_CHALLENGE_FAILED: GrpcStatus.UNAUTHENTICATED,
  ERR_CHALLENGE_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  // Attested, but no registration entry grants this runtime an identity (or its entry is gone).
  ERR_NO_MATCHING_ENTRY: GrpcStatus.PERMISSION_DENIED,
  // Several entries match and the caller did not say which one (AttestParams.spiffe_id): it must choose.
  ERR_ENTRY_AMBIGUOUS: GrpcStatus.FAILED_PRECONDITION,
  // An mTLS-only call (Renew, remote admin) arrived without a client certificate.
  ERR_CLIENT_CERT_REQUIRED: GrpcStatus.UNAUTHENTICATED,
  // A principal token from an issuer this server was not configured to trust: it authenticates nobody.
  ERR_PRINCIPAL_ISSUER_UNKNOWN: GrpcStatus.UNAUTHENTICATED,
  // The caller's entry lacks can_assert_principal.
  ERR_PRINCIPAL_ASSERTION_NOT_ALLOWED: GrpcStatus.PERMISSION_DENIED,
  // Delegation needs a session SVID (from StartSession or RedeemGrant), not a workload SVID.
  ERR_NOT_A_SESSION: GrpcStatus.FAILED_PRECONDITION,
  ERR_SESSION_ENDED: GrpcStatus.PERMISSION_DENIED,
  ERR_SESSION_EXPIRED: GrpcStatus.PERMISSION_DENIED,
  // A session SVID whose session this server cannot vouch for: not stored (pruned, or another server's
  // database), or stored before the server recorded what the session hangs on. Refused, never guessed.
  ERR_SESSION_UNKNOWN: GrpcStatus.PERMISSION_DENIED,
  ERR_DELEGATE_NOT_ALLOWED: GrpcStatus.PERMISSION_DENIED,
  // The binding does not decode, is not signed by the caller's key, or does not match the caller's session.
  ERR_GRANT_BINDING_INVALID: GrpcStatus.INVALID_ARGUMENT,
  ERR_GRANT_NOT_FOUND: GrpcStatus.NOT_FOUND,
  ERR_GRANT_WRONG_REDEEMER: GrpcStatus.PERMISSION_DENIED,
  ERR_GRANT_REPLAYED: GrpcStatus.PERMISSION_DENIED,
  ERR_GRANT_EXPIRED: GrpcStatus.PERMISSION_DENIED,
  // The CSR is for another key than the one the parent's binding names.
  ERR_GRANT_KEY_MISMATCH: GrpcStatus.PERMISSION_DENIED,
  ERR_HANDOFF_KEY_UNKNOWN: GrpcStatus.NOT_FOUND,
  ERR_HANDOFF_KEYS_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  // A retry once the source has fetched or renewed its SVID may succeed.
  ERR_SOURCE_NOT_READY: GrpcStatus.UNAVAILABLE,
  // Like a bad config: the operator fixes the file; the server keeps the last good set on a reload.
  ERR_POLICY_INVALID: GrpcStatus.FAILED_PRECONDITION,
  ERR_POLICY_DENIED: GrpcStatus.PERMISSION_DENIED,
  ERR_AUDIT_RECORD_INVALID: GrpcStatus.INVALID_ARGUMENT,
  // A chain that fails verification has lost integrity: DATA_LOSS, gRPC's status for unrecoverable corruption.
  ERR_AUDIT_CHAIN_BROKEN: GrpcStatus.DATA_LOSS,
  // The trail could not be written: the action it describes was not acknowledged; a retry later may succeed.
  ERR_AUDIT_WRITE_FAILED: GrpcStatus.UNAVAILABLE,
  // A workload shipped more audit records or bytes than its quota allows in the current window.
  ERR_AUDIT_QUOTA_EXCEEDED: GrpcStatus.RESOURCE_EXHAUSTED,
  // The Workload API standard: PermissionDenied for a caller entitled to nothing, InvalidArgument for a
  // missing security header or a JWT-SVID that fails validation.
  ERR_NOT_ENTITLED: GrpcStatus.PERMISSION_DENIED,
  ERR_SECURITY_HEADER_MISSING: GrpcStatus.INVALID_ARGUMENT,
  ERR_JWT_SVID_INVALID: GrpcStatus.INVALID_ARGUMENT,
  // Nothing cached yet and the server not reached: a retry later may succeed.
  ERR_AGENT_NOT_READY: GrpcStatus.UNAVAILABLE,
  // The peer's process vanished or changed while it was being attested: fail closed.
  ERR_WORKLOAD_ATTESTATION_FAILED: GrpcStatus.PERMISSION_DENIED,
  ERR_INVALID_REQUEST_TARGET: GrpcStatus.INVALID_ARGUMENT,
  ERR_CLIENT_CERT_REJECTED: GrpcStatus.UNAUTHENTICATED,
  ERR_MALFORMED_REQUEST: GrpcStatus.INVALID_ARGUMENT,
  ERR_QUOTA_EXCEEDED: GrpcStatus.RESOURCE_EXHAUSTED,
  // The stored bundle stays; the caller sends a newer one (or none).
  ERR_BUNDLE_SEQUENCE_REGRESSED: GrpcStatus.FAILED_PRECONDITION,
  ERR_FEDERATION_FETCH_FAILED: GrpcStatus.UNAVAILABLE,
  ERR_FEDERATION_ENDPOINT_UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  ERR_FEDERATION_RELATIONSHIP_MISSING: GrpcStatus.FAILED_PRECONDITION,
  ERR_FEDERATION_RELATIONSHIP_IN_USE: GrpcStatus.FAILED_PRECONDITION,
};

/** The gRPC status a Lanyard error is reported with. */
export function grpcStatusOf(e: LanyardError): GrpcStatusCode {
  return grpcStatusByCode[e.code];
}

/** What this module reads of a grpc-js ServiceError, so it does not load grpc-js. */
export interface RemoteStatus {
  readonly details: string;
  readonly metadata?: { get(key: string): unknown[] } | undefined;
}

/**
 * The error a Lanyard gRPC edge refused with, rebuilt on the client as the class of the code in its
 * `lanyard-error-code` trailer (the ServiceError as its cause); undefined when the peer sent no Lanyard code.
 */
export function errorFromStatus(e: RemoteStatus): AnyLanyardError | undefined {
  const code = e.metadata?.get(ERROR_CODE_TRAILER)[0];
  return isLanyardErrorCode(code) ? errorFromCode(code, e.details, { cause: e }) : undefined;
}
