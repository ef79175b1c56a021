/**
 * Every rejection Lanyard makes is a typed error with a stable `code` that callers can branch on,
 * and exactly one gRPC status so the server and the verifier helpers report the same reason the same way.
 */
// Type-only: rules.ts imports nothing, so this adds no runtime dependency or cycle.
import type { SpiffeIdRuleName } from './spiffe/rules';

/** gRPC status codes (numeric values from the gRPC spec) so this module does not depend on grpc-js. */
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

/** Stable error codes. Adding a code is fine; renaming one breaks callers. */
export const ErrorCode = {
  // SPIFFE ID and trust domain syntax
  INVALID_SPIFFE_ID: 'ERR_INVALID_SPIFFE_ID',
  INVALID_TRUST_DOMAIN: 'ERR_INVALID_TRUST_DOMAIN',
  // bundles
  INVALID_BUNDLE: 'ERR_INVALID_BUNDLE',
  BUNDLE_NOT_FOUND: 'ERR_BUNDLE_NOT_FOUND',
  // certificates, CSRs, keys
  MALFORMED_CERTIFICATE: 'ERR_MALFORMED_CERTIFICATE',
  MALFORMED_CSR: 'ERR_MALFORMED_CSR',
  CSR_SIGNATURE_INVALID: 'ERR_CSR_SIGNATURE_INVALID',
  UNSUPPORTED_KEY: 'ERR_UNSUPPORTED_KEY',
  UNSUPPORTED_ALGORITHM: 'ERR_UNSUPPORTED_ALGORITHM',
  MALFORMED_PEM: 'ERR_MALFORMED_PEM',
  // agent-context extension
  MALFORMED_AGENT_CONTEXT: 'ERR_MALFORMED_AGENT_CONTEXT',
  AGENT_CONTEXT_TOO_LARGE: 'ERR_AGENT_CONTEXT_TOO_LARGE',
  UNSUPPORTED_AGENT_CONTEXT_VERSION: 'ERR_UNSUPPORTED_AGENT_CONTEXT_VERSION',
  // the agent context sits under another OID than the one this side reads (server `agent_context.oid`, the
  // verifier's `agentContextOid`); a configured OID that is not one Lanyard may write
  AGENT_CONTEXT_OID_MISMATCH: 'ERR_AGENT_CONTEXT_OID_MISMATCH',
  INVALID_AGENT_CONTEXT_OID: 'ERR_INVALID_AGENT_CONTEXT_OID',
  // path validation (RFC 5280)
  CHAIN_EMPTY: 'ERR_CHAIN_EMPTY',
  CHAIN_TOO_LONG: 'ERR_CHAIN_TOO_LONG',
  UNKNOWN_AUTHORITY: 'ERR_UNKNOWN_AUTHORITY',
  SIGNATURE_INVALID: 'ERR_SIGNATURE_INVALID',
  CERT_EXPIRED: 'ERR_CERT_EXPIRED',
  CERT_NOT_YET_VALID: 'ERR_CERT_NOT_YET_VALID',
  NOT_A_CA: 'ERR_NOT_A_CA',
  PATH_LEN_EXCEEDED: 'ERR_PATH_LEN_EXCEEDED',
  KEY_USAGE_INVALID: 'ERR_KEY_USAGE_INVALID',
  UNKNOWN_CRITICAL_EXTENSION: 'ERR_UNKNOWN_CRITICAL_EXTENSION',
  NAME_CONSTRAINTS_VIOLATED: 'ERR_NAME_CONSTRAINTS_VIOLATED',
  // A certificate of the path breaks an RFC 5280 §4 profile rule the validator relies on (key identifiers,
  // criticality, a malformed name): well-formed DER, but not a certificate a conforming CA issues.
  CERT_PROFILE_INVALID: 'ERR_CERT_PROFILE_INVALID',
  // SVID rules
  SVID_INVALID: 'ERR_SVID_INVALID',
  SVID_EXPIRED: 'ERR_SVID_EXPIRED',
  WRONG_TRUST_DOMAIN: 'ERR_WRONG_TRUST_DOMAIN',
  // agent-context rules along the delegation chain
  SCOPE_ESCALATION: 'ERR_SCOPE_ESCALATION',
  LIFETIME_ESCALATION: 'ERR_LIFETIME_ESCALATION',
  DELEGATION_TOO_DEEP: 'ERR_DELEGATION_TOO_DEEP',
  ROOT_CHANGED: 'ERR_ROOT_CHANGED',
  DELEGATION_LINK_INVALID: 'ERR_DELEGATION_LINK_INVALID',
  DELEGATION_SIGNATURE_INVALID: 'ERR_DELEGATION_SIGNATURE_INVALID',
  // The context attributes a hop, the principal or the issuing server to another trust domain than the leaf's.
  CONTEXT_FOREIGN_DOMAIN: 'ERR_CONTEXT_FOREIGN_DOMAIN',
  // revocation and authorization
  REVOKED: 'ERR_REVOKED',
  // the verifier's revocation state is older than its staleness bound (the feed is down or blocked): a session
  // SVID cannot be told apart from an ended one, so it is refused (RevocationCache onStale 'refuse')
  REVOCATION_STALE: 'ERR_REVOCATION_STALE',
  UNAUTHORIZED: 'ERR_UNAUTHORIZED',
  // operational
  INVALID_ARGUMENT: 'ERR_INVALID_ARGUMENT',
  IO: 'ERR_IO',
  INTERNAL: 'ERR_INTERNAL',
  INVALID_CONFIG: 'ERR_INVALID_CONFIG',
  // stored state (registration entries, join tokens, CA state)
  NOT_FOUND: 'ERR_NOT_FOUND',
  ALREADY_EXISTS: 'ERR_ALREADY_EXISTS',
  REVISION_CONFLICT: 'ERR_REVISION_CONFLICT',
  STORE_CLOSED: 'ERR_STORE_CLOSED',
  STORE_SCHEMA_TOO_NEW: 'ERR_STORE_SCHEMA_TOO_NEW',
  // join tokens (attestation evidence)
  TOKEN_INVALID: 'ERR_TOKEN_INVALID',
  TOKEN_EXPIRED: 'ERR_TOKEN_EXPIRED',
  TOKEN_SPENT: 'ERR_TOKEN_SPENT',
  // the server's CA and its keys
  CA_NOT_READY: 'ERR_CA_NOT_READY',
  CA_NOT_PREPARED: 'ERR_CA_NOT_PREPARED',
  CA_SELF_TEST_FAILED: 'ERR_CA_SELF_TEST_FAILED',
  KEY_FILE_INSECURE: 'ERR_KEY_FILE_INSECURE',
  KEY_UNREADABLE: 'ERR_KEY_UNREADABLE',
  // attestation (src/attest): evidence, JWT claims, proof-of-possession challenges
  ATTESTOR_UNKNOWN: 'ERR_ATTESTOR_UNKNOWN',
  MALFORMED_EVIDENCE: 'ERR_MALFORMED_EVIDENCE',
  TOKEN_NOT_YET_VALID: 'ERR_TOKEN_NOT_YET_VALID',
  TOKEN_AUDIENCE_MISMATCH: 'ERR_TOKEN_AUDIENCE_MISMATCH',
  TOKEN_ISSUER_MISMATCH: 'ERR_TOKEN_ISSUER_MISMATCH',
  CHALLENGE_FAILED: 'ERR_CHALLENGE_FAILED',
  CHALLENGE_TIMEOUT: 'ERR_CHALLENGE_TIMEOUT',
  // issuance (src/server/attestation): which entry an attested runtime gets, and who may call what
  NO_MATCHING_ENTRY: 'ERR_NO_MATCHING_ENTRY',
  ENTRY_AMBIGUOUS: 'ERR_ENTRY_AMBIGUOUS',
  CLIENT_CERT_REQUIRED: 'ERR_CLIENT_CERT_REQUIRED',
  // sessions, delegation grants and revocation (src/server/sessions). Scope, lifetime and depth refusals at
  // grant time reuse ERR_SCOPE_ESCALATION, ERR_LIFETIME_ESCALATION and ERR_DELEGATION_TOO_DEEP: the same rule
  // the verifier enforces, refused earlier.
  PRINCIPAL_ISSUER_UNKNOWN: 'ERR_PRINCIPAL_ISSUER_UNKNOWN',
  PRINCIPAL_ASSERTION_NOT_ALLOWED: 'ERR_PRINCIPAL_ASSERTION_NOT_ALLOWED',
  NOT_A_SESSION: 'ERR_NOT_A_SESSION',
  SESSION_ENDED: 'ERR_SESSION_ENDED',
  SESSION_EXPIRED: 'ERR_SESSION_EXPIRED',
  SESSION_UNKNOWN: 'ERR_SESSION_UNKNOWN',
  DELEGATE_NOT_ALLOWED: 'ERR_DELEGATE_NOT_ALLOWED',
  GRANT_BINDING_INVALID: 'ERR_GRANT_BINDING_INVALID',
  GRANT_NOT_FOUND: 'ERR_GRANT_NOT_FOUND',
  GRANT_WRONG_REDEEMER: 'ERR_GRANT_WRONG_REDEEMER',
  GRANT_REPLAYED: 'ERR_GRANT_REPLAYED',
  GRANT_EXPIRED: 'ERR_GRANT_EXPIRED',
  GRANT_KEY_MISMATCH: 'ERR_GRANT_KEY_MISMATCH',
  // handoff at a hop (src/client/handoff-keys.ts): a grant for a key this service did not offer the caller (or
  // offered too long ago), and a service holding as many offered keys as it allows
  HANDOFF_KEY_UNKNOWN: 'ERR_HANDOFF_KEY_UNKNOWN',
  HANDOFF_KEYS_EXHAUSTED: 'ERR_HANDOFF_KEYS_EXHAUSTED',
  // X509Source (src/client): the workload has no current SVID to present (not fetched yet, expired without
  // renewal, or the source was closed).
  SOURCE_NOT_READY: 'ERR_SOURCE_NOT_READY',
  // Cedar policy (src/policy): a policy file that does not parse or validate against the Lanyard schema, and
  // a request the policy set did not permit (deny by default).
  POLICY_INVALID: 'ERR_POLICY_INVALID',
  POLICY_DENIED: 'ERR_POLICY_DENIED',
  // audit trail (src/audit): a record or line that is not a valid audit record, a chain that does not verify,
  // and a record that could not be made durable (the action it describes is then not acknowledged)
  AUDIT_RECORD_INVALID: 'ERR_AUDIT_RECORD_INVALID',
  AUDIT_CHAIN_BROKEN: 'ERR_AUDIT_CHAIN_BROKEN',
  AUDIT_WRITE_FAILED: 'ERR_AUDIT_WRITE_FAILED',
  AUDIT_QUOTA_EXCEEDED: 'ERR_AUDIT_QUOTA_EXCEEDED',
  // node agent and the SPIFFE Workload API (src/agent, src/server/node): a caller asking for an identity that
  // is not its own (an agent for an entry not under it, a local workload for nothing), a Workload API call
  // without the `workload.spiffe.io: true` header, a JWT-SVID that does not validate, an agent with nothing
  // cached yet and no server, and a local caller whose process could not be attested.
  NOT_ENTITLED: 'ERR_NOT_ENTITLED',
  SECURITY_HEADER_MISSING: 'ERR_SECURITY_HEADER_MISSING',
  JWT_SVID_INVALID: 'ERR_JWT_SVID_INVALID',
  AGENT_NOT_READY: 'ERR_AGENT_NOT_READY',
  WORKLOAD_ATTESTATION_FAILED: 'ERR_WORKLOAD_ATTESTATION_FAILED',
  // hop HTTP helpers (src/hop): a request target whose path has no one meaning (dot segments, encoded '/',
  // absolute-form, ...), refused with HTTP 400 before any policy sees it
  INVALID_REQUEST_TARGET: 'ERR_INVALID_REQUEST_TARGET',
  // public listener mTLS (src/server/tls): the TLS stack refused the client certificate the caller sent and
  // the SVID verifier could not name a reason of its own (or the reason could not be read)
  CLIENT_CERT_REJECTED: 'ERR_CLIENT_CERT_REJECTED',
  // gRPC servers: request bytes that do not decode as the method's protobuf message
  MALFORMED_REQUEST: 'ERR_MALFORMED_REQUEST',
  // a per-agent or per-connection limit of the server (live sessions, sessions ended in a window, revocation
  // watchers): refused before anything is written; a retry after the window, or with fewer open, may succeed
  QUOTA_EXCEEDED: 'ERR_QUOTA_EXCEEDED',
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

const statusByCode: Record<ErrorCodeValue, GrpcStatusCode> = {
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
};

/** Base class of every error Lanyard throws on purpose. */
export class LanyardError extends Error {
  readonly code: ErrorCodeValue;
  readonly grpcStatus: GrpcStatusCode;

  constructor(code: ErrorCodeValue, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.grpcStatus = statusByCode[code];
    this.name = new.target.name;
  }
}

/**
 * A SPIFFE ID broke a rule of the SPIFFE-ID standard; the message names the rule, and `rule` carries its
 * SpiffeIdRule key when the rule is one of the standard's syntax rules.
 */
export class InvalidSpiffeIdError extends LanyardError {
  readonly rule?: SpiffeIdRuleName;

  constructor(code: ErrorCodeValue, message: string, options?: { cause?: unknown; rule?: SpiffeIdRuleName }) {
    super(code, message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    if (options?.rule !== undefined) this.rule = options.rule;
  }
}
/**
 * A trust domain name broke a rule of the SPIFFE-ID standard. A subclass of InvalidSpiffeIdError, so one
 * `instanceof InvalidSpiffeIdError` catches every ID and trust-domain parse failure; its code stays
 * ERR_INVALID_TRUST_DOMAIN.
 */
export class InvalidTrustDomainError extends InvalidSpiffeIdError {
  constructor(message: string, rule?: SpiffeIdRuleName) {
    super(ErrorCode.INVALID_TRUST_DOMAIN, message, rule !== undefined ? { rule } : undefined);
  }
}
/** A bundle (PEM or SPIFFE JWKS) could not be read, or none exists for a trust domain. */
export class BundleError extends LanyardError {}
/** DER/PEM/CSR/key input that cannot be parsed or uses something we refuse. */
export class MalformedInputError extends LanyardError {}
/** The agent-context extension is malformed, oversized, or of an unknown version. */
export class AgentContextError extends LanyardError {}
/**
 * A certificate carries a Lanyard agent context under another OID than the one this side reads: the issuing
 * server's `agent_context.oid` and this verifier's `agentContextOid` differ. Never read as "no context".
 */
export class AgentContextOidMismatchError extends AgentContextError {
  /** The OID this side reads the agent context under. */
  readonly expectedOid: string;
  /** The OID the certificate carries it under. */
  readonly foundOid: string;

  constructor(expectedOid: string, foundOid: string, message: string) {
    super(ErrorCode.AGENT_CONTEXT_OID_MISMATCH, message);
    this.expectedOid = expectedOid;
    this.foundOid = foundOid;
  }
}
/** The certification path does not validate (RFC 5280). */
export class PathValidationError extends LanyardError {}
/** The leaf is not a valid X.509-SVID, or its context breaks a delegation rule. */
export class SvidVerificationError extends LanyardError {}
/** The SVID, its session, or its root session has been revoked. */
export class RevokedError extends LanyardError {
  constructor(message: string) {
    super(ErrorCode.REVOKED, message);
  }
}
/**
 * The verifier's revocation state is too old to tell whether the SVID's session ended (RevocationCache with
 * onStale 'refuse'): a refusal of the verifier's own state, not of the peer; UNAVAILABLE (HTTP 503).
 */
export class RevocationStaleError extends LanyardError {
  constructor(message: string) {
    super(ErrorCode.REVOCATION_STALE, message);
  }
}
/** A verified peer is not allowed by an authorizer. */
export class AuthorizationError extends LanyardError {
  constructor(message: string) {
    super(ErrorCode.UNAUTHORIZED, message);
  }
}

/** A stored object (entry, join token, CA record) does not exist. */
export class NotFoundError extends LanyardError {
  constructor(message: string) {
    super(ErrorCode.NOT_FOUND, message);
  }
}
/** A stored object with the same identity (id, or SPIFFE ID + parent + selector set) already exists. */
export class AlreadyExistsError extends LanyardError {
  constructor(message: string) {
    super(ErrorCode.ALREADY_EXISTS, message);
  }
}
/** Optimistic concurrency: the caller's revision is not the stored one. Re-read and retry. */
export class RevisionConflictError extends LanyardError {
  readonly currentRevision: number;
  constructor(message: string, currentRevision: number) {
    super(ErrorCode.REVISION_CONFLICT, message);
    this.currentRevision = currentRevision;
  }
}
/** A join token is unknown, expired or already used. The message never contains the token. */
export class JoinTokenError extends LanyardError {}
/** The configuration file or flags are invalid; the message names the field. */
export class ConfigError extends LanyardError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.INVALID_CONFIG, message, options);
  }
}
/** The store cannot serve: closed, or its database was written by a newer Lanyard. */
export class StoreError extends LanyardError {}

/** Issuance refused after the evidence was checked: no entry, several entries, or no client certificate. */
export class IssuanceError extends LanyardError {}

/** A session, grant or revocation call was refused (sessions and delegation). */
export class SessionError extends LanyardError {}

/** The CA cannot sign (not ready), has nothing to activate, or a new CA failed its self-test. */
export class CaError extends LanyardError {}
/**
 * A key manager could not create, load or delete a key. The message names the key id and, for disk keys,
 * the file; never any key material.
 */
export class KeyManagerError extends LanyardError {}

/** A policy file is unreadable, does not parse or does not validate (the message names the file), or the policy denied. */
export class PolicyError extends LanyardError {}

/** An audit record or line is malformed, a chain does not verify, or a record could not be written. */
export class AuditError extends LanyardError {}

export function isLanyardError(e: unknown): e is LanyardError {
  return e instanceof LanyardError;
}
