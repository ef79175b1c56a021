/**
 * Every rejection Lanyard makes is a typed error whose class fixes its stable `code` (the jose way): callers
 * branch with `instanceof` or `switch (e.code)`, and the code narrows to the class. Library errors carry no
 * transport status: the gRPC edge (src/internal/grpc-status-map.ts) and the HTTP edge
 * (src/internal/http-status-map.ts) each map a code to a status in one table. The doc comment of each class is
 * the meaning docs/reference/errors.md publishes (scripts/gen-error-docs.ts).
 */
// Type-only: rules.ts imports nothing, so this adds no runtime dependency or cycle.
import type { SpiffeIdRuleName } from './spiffe/rules';

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
  // A link's parentChain (the parent's SVID from its own trust domain) does not prove the link it is attached to.
  PARENT_CHAIN_INVALID: 'ERR_PARENT_CHAIN_INVALID',
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
  // SPIFFE federation (src/federation): a fetched or configured foreign bundle whose spiffe_sequence is lower
  // than the stored one (a replay of an old bundle); a bundle endpoint that could not be reached or answered
  // with something other than a bundle; a bundle endpoint whose TLS identity is not the pinned one; an entry
  // naming a trust domain without a relationship, or a relationship still named by entries.
  BUNDLE_SEQUENCE_REGRESSED: 'ERR_BUNDLE_SEQUENCE_REGRESSED',
  FEDERATION_FETCH_FAILED: 'ERR_FEDERATION_FETCH_FAILED',
  FEDERATION_ENDPOINT_UNAUTHENTICATED: 'ERR_FEDERATION_ENDPOINT_UNAUTHENTICATED',
  FEDERATION_RELATIONSHIP_MISSING: 'ERR_FEDERATION_RELATIONSHIP_MISSING',
  FEDERATION_RELATIONSHIP_IN_USE: 'ERR_FEDERATION_RELATIONSHIP_IN_USE',
} as const;
/** Every stable error code: a string-literal union, so `switch (e.code)` on a LanyardErrors narrows to the class. */
export type LanyardErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
/** The former name of LanyardErrorCode. */
export type ErrorCodeValue = LanyardErrorCode;

/**
 * The codes filed under each family of errors (an abstract class such as PathValidationError, or
 * InvalidSpiffeIdError with its subclass): a family's `code` is one of these, and a class of the family names
 * one of them as its code.
 */
export interface ErrorFamilyCodes {
  InvalidSpiffeIdError: typeof ErrorCode.INVALID_SPIFFE_ID | typeof ErrorCode.INVALID_TRUST_DOMAIN;
  BundleError: typeof ErrorCode.INVALID_BUNDLE | typeof ErrorCode.BUNDLE_NOT_FOUND;
  MalformedInputError:
    | typeof ErrorCode.MALFORMED_CERTIFICATE
    | typeof ErrorCode.MALFORMED_CSR
    | typeof ErrorCode.CSR_SIGNATURE_INVALID
    | typeof ErrorCode.UNSUPPORTED_KEY
    | typeof ErrorCode.UNSUPPORTED_ALGORITHM
    | typeof ErrorCode.MALFORMED_PEM;
  AgentContextError:
    | typeof ErrorCode.MALFORMED_AGENT_CONTEXT
    | typeof ErrorCode.AGENT_CONTEXT_TOO_LARGE
    | typeof ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION
    | typeof ErrorCode.AGENT_CONTEXT_OID_MISMATCH
    | typeof ErrorCode.INVALID_AGENT_CONTEXT_OID;
  PathValidationError:
    | typeof ErrorCode.CHAIN_EMPTY
    | typeof ErrorCode.CHAIN_TOO_LONG
    | typeof ErrorCode.UNKNOWN_AUTHORITY
    | typeof ErrorCode.SIGNATURE_INVALID
    | typeof ErrorCode.CERT_EXPIRED
    | typeof ErrorCode.CERT_NOT_YET_VALID
    | typeof ErrorCode.NOT_A_CA
    | typeof ErrorCode.PATH_LEN_EXCEEDED
    | typeof ErrorCode.KEY_USAGE_INVALID
    | typeof ErrorCode.UNKNOWN_CRITICAL_EXTENSION
    | typeof ErrorCode.NAME_CONSTRAINTS_VIOLATED
    | typeof ErrorCode.CERT_PROFILE_INVALID;
  SvidVerificationError:
    | typeof ErrorCode.SVID_INVALID
    | typeof ErrorCode.SVID_EXPIRED
    | typeof ErrorCode.WRONG_TRUST_DOMAIN
    | typeof ErrorCode.SCOPE_ESCALATION
    | typeof ErrorCode.LIFETIME_ESCALATION
    | typeof ErrorCode.DELEGATION_TOO_DEEP
    | typeof ErrorCode.ROOT_CHANGED
    | typeof ErrorCode.DELEGATION_LINK_INVALID
    | typeof ErrorCode.DELEGATION_SIGNATURE_INVALID
    | typeof ErrorCode.CONTEXT_FOREIGN_DOMAIN
    | typeof ErrorCode.PARENT_CHAIN_INVALID;
  StoreError: typeof ErrorCode.STORE_CLOSED | typeof ErrorCode.STORE_SCHEMA_TOO_NEW;
  AttestationError:
    | typeof ErrorCode.TOKEN_INVALID
    | typeof ErrorCode.TOKEN_EXPIRED
    | typeof ErrorCode.TOKEN_SPENT
    | typeof ErrorCode.ATTESTOR_UNKNOWN
    | typeof ErrorCode.MALFORMED_EVIDENCE
    | typeof ErrorCode.TOKEN_NOT_YET_VALID
    | typeof ErrorCode.TOKEN_AUDIENCE_MISMATCH
    | typeof ErrorCode.TOKEN_ISSUER_MISMATCH
    | typeof ErrorCode.CHALLENGE_FAILED
    | typeof ErrorCode.CHALLENGE_TIMEOUT;
  CaError:
    typeof ErrorCode.CA_NOT_READY | typeof ErrorCode.CA_NOT_PREPARED | typeof ErrorCode.CA_SELF_TEST_FAILED;
  KeyManagerError: typeof ErrorCode.KEY_FILE_INSECURE | typeof ErrorCode.KEY_UNREADABLE;
  IssuanceError:
    | typeof ErrorCode.NO_MATCHING_ENTRY
    | typeof ErrorCode.ENTRY_AMBIGUOUS
    | typeof ErrorCode.CLIENT_CERT_REQUIRED;
  SessionError:
    | typeof ErrorCode.PRINCIPAL_ISSUER_UNKNOWN
    | typeof ErrorCode.PRINCIPAL_ASSERTION_NOT_ALLOWED
    | typeof ErrorCode.NOT_A_SESSION
    | typeof ErrorCode.SESSION_ENDED
    | typeof ErrorCode.SESSION_EXPIRED
    | typeof ErrorCode.SESSION_UNKNOWN
    | typeof ErrorCode.DELEGATE_NOT_ALLOWED
    | typeof ErrorCode.GRANT_BINDING_INVALID
    | typeof ErrorCode.GRANT_NOT_FOUND
    | typeof ErrorCode.GRANT_WRONG_REDEEMER
    | typeof ErrorCode.GRANT_REPLAYED
    | typeof ErrorCode.GRANT_EXPIRED
    | typeof ErrorCode.GRANT_KEY_MISMATCH;
  PolicyError: typeof ErrorCode.POLICY_INVALID | typeof ErrorCode.POLICY_DENIED;
  AuditError:
    | typeof ErrorCode.AUDIT_RECORD_INVALID
    | typeof ErrorCode.AUDIT_CHAIN_BROKEN
    | typeof ErrorCode.AUDIT_WRITE_FAILED
    | typeof ErrorCode.AUDIT_QUOTA_EXCEEDED;
  FederationError:
    | typeof ErrorCode.BUNDLE_SEQUENCE_REGRESSED
    | typeof ErrorCode.FEDERATION_FETCH_FAILED
    | typeof ErrorCode.FEDERATION_ENDPOINT_UNAUTHENTICATED
    | typeof ErrorCode.FEDERATION_RELATIONSHIP_MISSING
    | typeof ErrorCode.FEDERATION_RELATIONSHIP_IN_USE;
}

export interface LanyardErrorOptions {
  cause?: unknown;
}

/**
 * Base class of every error Lanyard throws on purpose. Abstract: every throw names the class of its code, so
 * the class and the code never disagree.
 *
 * The one place a class fixes its code: a class states its code once, as its `code` static, and as the type
 * argument of its family (`extends PathValidationError<'ERR_CHAIN_EMPTY'>`) so that the instance `code` is
 * that literal; the constructor copies the static onto the instance.
 */
export abstract class LanyardError<
  C extends LanyardErrorCode = LanyardErrorCode,
  O extends LanyardErrorOptions = LanyardErrorOptions,
> extends Error {
  declare readonly code: C;

  /** `options` holds the `cause` and the details the class takes (its `O`), each set as a field when given. */
  constructor(message: string, options?: O) {
    // Abstract for TypeScript; this holds it for plain JavaScript callers too, for the families as well. And
    // a code has one class: a subclass that inherits (or repeats) another class's code cannot be thrown.
    const code = (new.target as { readonly code?: unknown }).code;
    if (!isLanyardErrorCode(code))
      throw new TypeError(`${new.target.name} is abstract: throw the class of the code`);
    if ((errorClasses[code] as unknown) !== new.target)
      throw new TypeError(`${new.target.name} is not the class of ${code}: throw ${errorClasses[code].name}`);
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.code = code as C;
    // The one place an option becomes a field. A detail never replaces what is already set (message, stack,
    // name, code, or anything the prototype has).
    for (const [key, value] of Object.entries(options ?? {}))
      if (key !== 'cause' && value !== undefined && !(key in this))
        (this as Record<string, unknown>)[key] = value;
  }

  /**
   * The default `instanceof`, typed so that `e instanceof PathValidationError` narrows to the family with its
   * code union (TypeScript would otherwise narrow a generic class to `PathValidationError<any>`).
   */
  static override [Symbol.hasInstance]<T>(
    this: abstract new (...args: never[]) => T,
    value: unknown,
  ): value is T {
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** A trust bundle (PEM or SPIFFE JWKS) could not be read, or none exists for a trust domain. */
export abstract class BundleError<
  C extends ErrorFamilyCodes['BundleError'] = ErrorFamilyCodes['BundleError'],
> extends LanyardError<C> {}

/** DER, PEM, CSR or key input that cannot be parsed, or that uses something Lanyard refuses. */
export abstract class MalformedInputError<
  C extends ErrorFamilyCodes['MalformedInputError'] = ErrorFamilyCodes['MalformedInputError'],
> extends LanyardError<C, CertificateErrorOptions> {
  /** Which certificate of a path was at fault, counted from the leaf (0), when path validation found it. */
  declare readonly certIndex?: number;
  /** The SHA-256 (hex) of that certificate's DER. */
  declare readonly certSha256Hex?: string;
}

/** The agent-context extension is malformed, oversized, of an unknown version, or under an unexpected OID. */
export abstract class AgentContextError<
  C extends ErrorFamilyCodes['AgentContextError'] = ErrorFamilyCodes['AgentContextError'],
  O extends LanyardErrorOptions = LanyardErrorOptions,
> extends LanyardError<C, O> {}

/**
 * The certification path does not validate (RFC 5280). `certIndex` and `certSha256Hex` name the certificate at
 * fault when one is (0 = the leaf).
 */
export abstract class PathValidationError<
  C extends ErrorFamilyCodes['PathValidationError'] = ErrorFamilyCodes['PathValidationError'],
> extends LanyardError<C, CertificateErrorOptions> {
  /** Which certificate of the candidate path failed, counted from the leaf (0), when one did. */
  declare readonly certIndex?: number;
  /** The SHA-256 (hex) of that certificate's DER. */
  declare readonly certSha256Hex?: string;
}

/** The leaf is not a valid X.509-SVID, or its agent context breaks a rule of the delegation chain. */
export abstract class SvidVerificationError<
  C extends ErrorFamilyCodes['SvidVerificationError'] = ErrorFamilyCodes['SvidVerificationError'],
> extends LanyardError<C> {}

/** The store cannot serve: closed, or its database was written by a newer Lanyard. */
export abstract class StoreError<
  C extends ErrorFamilyCodes['StoreError'] = ErrorFamilyCodes['StoreError'],
> extends LanyardError<C> {}

/**
 * Attestation refused the evidence: an unknown attestor, malformed evidence, a bad join token, a JWT for another
 * audience or issuer, a failed challenge. Messages never contain the evidence itself.
 */
export abstract class AttestationError<
  C extends ErrorFamilyCodes['AttestationError'] = ErrorFamilyCodes['AttestationError'],
> extends LanyardError<C> {}

/** The CA cannot sign (not ready), has nothing to activate, or a new CA failed its self-test. */
export abstract class CaError<
  C extends ErrorFamilyCodes['CaError'] = ErrorFamilyCodes['CaError'],
> extends LanyardError<C> {}

/**
 * A key manager could not create, load or delete a key. The message names the key id and, for disk keys, the file;
 * never any key material.
 */
export abstract class KeyManagerError<
  C extends ErrorFamilyCodes['KeyManagerError'] = ErrorFamilyCodes['KeyManagerError'],
> extends LanyardError<C> {}

/** Issuance refused after the evidence was checked: no entry, several entries, or no client certificate. */
export abstract class IssuanceError<
  C extends ErrorFamilyCodes['IssuanceError'] = ErrorFamilyCodes['IssuanceError'],
> extends LanyardError<C> {}

/** A session, delegation grant or revocation call was refused. */
export abstract class SessionError<
  C extends ErrorFamilyCodes['SessionError'] = ErrorFamilyCodes['SessionError'],
> extends LanyardError<C> {}

/** A policy file is unreadable, does not parse or validate, or the policy denied the request. */
export abstract class PolicyError<
  C extends ErrorFamilyCodes['PolicyError'] = ErrorFamilyCodes['PolicyError'],
  O extends LanyardErrorOptions = LanyardErrorOptions,
> extends LanyardError<C, O> {}

/** An audit record or line is malformed, a chain does not verify, or a record could not be written. */
export abstract class AuditError<
  C extends ErrorFamilyCodes['AuditError'] = ErrorFamilyCodes['AuditError'],
> extends LanyardError<C> {}

/** SPIFFE federation: foreign bundles, their endpoints and the relationships that name them. */
export abstract class FederationError<
  C extends ErrorFamilyCodes['FederationError'] = ErrorFamilyCodes['FederationError'],
> extends LanyardError<C> {}

/**
 * A SPIFFE ID breaks a rule of the SPIFFE-ID standard; the message names the rule, and `rule` carries its
 * SpiffeIdRule key when it is one of the standard's syntax rules.
 */
export class InvalidSpiffeIdError<
  C extends ErrorFamilyCodes['InvalidSpiffeIdError'] = ErrorFamilyCodes['InvalidSpiffeIdError'],
> extends LanyardError<C, LanyardErrorOptions & { rule?: SpiffeIdRuleName }> {
  // Widened to both codes so InvalidTrustDomainError can stay a subclass: one `instanceof InvalidSpiffeIdError`
  // catches every ID and trust-domain parse failure.
  static readonly code: ErrorFamilyCodes['InvalidSpiffeIdError'] = ErrorCode.INVALID_SPIFFE_ID;
  declare readonly rule?: SpiffeIdRuleName;
}

/**
 * A trust domain name breaks a rule of the SPIFFE-ID standard. A subclass of InvalidSpiffeIdError, so one
 * `instanceof InvalidSpiffeIdError` catches every ID and trust-domain parse failure.
 */
export class InvalidTrustDomainError extends InvalidSpiffeIdError<'ERR_INVALID_TRUST_DOMAIN'> {
  static override readonly code = ErrorCode.INVALID_TRUST_DOMAIN;
}

/** A trust bundle (PEM or SPIFFE bundle JWKS) does not parse or holds no usable root. */
export class InvalidBundleError extends BundleError<'ERR_INVALID_BUNDLE'> {
  static readonly code = ErrorCode.INVALID_BUNDLE;
}

/** No trust bundle is known for the peer's trust domain, so nothing it presents can be verified. */
export class BundleNotFoundError extends BundleError<'ERR_BUNDLE_NOT_FOUND'> {
  static readonly code = ErrorCode.BUNDLE_NOT_FOUND;
}

/** For an error about one certificate of a path: which one. */
export interface CertificateErrorOptions extends LanyardErrorOptions {
  /** Which certificate of the candidate path failed, counted from the leaf (0). */
  certIndex?: number;
  /** The SHA-256 (hex) of that certificate's DER. */
  certSha256Hex?: string;
}

/** A certificate is not well-formed DER X.509 (or not one Lanyard can read). */
export class MalformedCertificateError extends MalformedInputError<'ERR_MALFORMED_CERTIFICATE'> {
  static readonly code = ErrorCode.MALFORMED_CERTIFICATE;
}

/** A certificate signing request is not a well-formed PKCS#10 request. */
export class MalformedCsrError extends MalformedInputError<'ERR_MALFORMED_CSR'> {
  static readonly code = ErrorCode.MALFORMED_CSR;
}

/** A CSR's self-signature does not verify: the requester does not prove it holds the key. */
export class CsrSignatureInvalidError extends MalformedInputError<'ERR_CSR_SIGNATURE_INVALID'> {
  static readonly code = ErrorCode.CSR_SIGNATURE_INVALID;
}

/** A key of a type or size Lanyard does not accept. */
export class UnsupportedKeyError extends MalformedInputError<'ERR_UNSUPPORTED_KEY'> {
  static readonly code = ErrorCode.UNSUPPORTED_KEY;
}

/** A signature or key algorithm Lanyard does not accept. */
export class UnsupportedAlgorithmError extends MalformedInputError<'ERR_UNSUPPORTED_ALGORITHM'> {
  static readonly code = ErrorCode.UNSUPPORTED_ALGORITHM;
}

/** PEM text that does not decode, or holds blocks of the wrong type. */
export class MalformedPemError extends MalformedInputError<'ERR_MALFORMED_PEM'> {
  static readonly code = ErrorCode.MALFORMED_PEM;
}

/** The agent-context extension (or a delegation binding) is not valid canonical DER of the Lanyard schema. */
export class MalformedAgentContextError extends AgentContextError<'ERR_MALFORMED_AGENT_CONTEXT'> {
  static readonly code = ErrorCode.MALFORMED_AGENT_CONTEXT;
}

/** The agent-context extension is larger than the size limit. */
export class AgentContextTooLargeError extends AgentContextError<'ERR_AGENT_CONTEXT_TOO_LARGE'> {
  static readonly code = ErrorCode.AGENT_CONTEXT_TOO_LARGE;
}

/** The agent-context extension has a version this side does not read. */
export class UnsupportedAgentContextVersionError extends AgentContextError<'ERR_UNSUPPORTED_AGENT_CONTEXT_VERSION'> {
  static readonly code = ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION;
}

/**
 * A certificate carries a Lanyard agent context under another OID than the one this side reads (the issuing
 * server's `agent_context.oid` and the verifier's `agentContextOid` differ). Never read as "no context".
 */
export class AgentContextOidMismatchError extends AgentContextError<
  'ERR_AGENT_CONTEXT_OID_MISMATCH',
  LanyardErrorOptions & { expectedOid?: string; foundOid?: string }
> {
  static readonly code = ErrorCode.AGENT_CONTEXT_OID_MISMATCH;
  /** The OID this side reads the agent context under (absent when rebuilt from a remote status). */
  declare readonly expectedOid?: string;
  /** The OID the certificate carries it under (absent when rebuilt from a remote status). */
  declare readonly foundOid?: string;
}

/** A configured agent-context OID is not one Lanyard may write the extension under. */
export class InvalidAgentContextOidError extends AgentContextError<'ERR_INVALID_AGENT_CONTEXT_OID'> {
  static readonly code = ErrorCode.INVALID_AGENT_CONTEXT_OID;
}

/** The peer presented no certificate. */
export class ChainEmptyError extends PathValidationError<'ERR_CHAIN_EMPTY'> {
  static readonly code = ErrorCode.CHAIN_EMPTY;
}

/** The presented chain is longer than the verifier accepts. */
export class ChainTooLongError extends PathValidationError<'ERR_CHAIN_TOO_LONG'> {
  static readonly code = ErrorCode.CHAIN_TOO_LONG;
}

/** No path leads from the certificate to a root of the trust bundle. */
export class UnknownAuthorityError extends PathValidationError<'ERR_UNKNOWN_AUTHORITY'> {
  static readonly code = ErrorCode.UNKNOWN_AUTHORITY;
}

/** A signature (of a certificate on the path, or of signed evidence) does not verify. */
export class SignatureInvalidError extends PathValidationError<'ERR_SIGNATURE_INVALID'> {
  static readonly code = ErrorCode.SIGNATURE_INVALID;
}

/** A certificate on the path is past its notAfter. */
export class CertExpiredError extends PathValidationError<'ERR_CERT_EXPIRED'> {
  static readonly code = ErrorCode.CERT_EXPIRED;
}

/** A certificate on the path is before its notBefore. */
export class CertNotYetValidError extends PathValidationError<'ERR_CERT_NOT_YET_VALID'> {
  static readonly code = ErrorCode.CERT_NOT_YET_VALID;
}

/** A certificate that signs another is not a CA (basicConstraints). */
export class NotACaError extends PathValidationError<'ERR_NOT_A_CA'> {
  static readonly code = ErrorCode.NOT_A_CA;
}

/** The path is deeper than a CA's pathLenConstraint allows. */
export class PathLenExceededError extends PathValidationError<'ERR_PATH_LEN_EXCEEDED'> {
  static readonly code = ErrorCode.PATH_LEN_EXCEEDED;
}

/** A certificate's keyUsage or extendedKeyUsage does not allow what it is used for. */
export class KeyUsageInvalidError extends PathValidationError<'ERR_KEY_USAGE_INVALID'> {
  static readonly code = ErrorCode.KEY_USAGE_INVALID;
}

/** A certificate carries a critical extension the validator does not process. */
export class UnknownCriticalExtensionError extends PathValidationError<'ERR_UNKNOWN_CRITICAL_EXTENSION'> {
  static readonly code = ErrorCode.UNKNOWN_CRITICAL_EXTENSION;
}

/** A name of the certificate is outside a CA's name constraints. */
export class NameConstraintsViolatedError extends PathValidationError<'ERR_NAME_CONSTRAINTS_VIOLATED'> {
  static readonly code = ErrorCode.NAME_CONSTRAINTS_VIOLATED;
}

/**
 * A certificate of the path breaks an RFC 5280 §4 profile rule the validator relies on (key identifiers,
 * criticality, a malformed name): well-formed DER, but not a certificate a conforming CA issues.
 */
export class CertProfileInvalidError extends PathValidationError<'ERR_CERT_PROFILE_INVALID'> {
  static readonly code = ErrorCode.CERT_PROFILE_INVALID;
}

/**
 * The leaf breaks a rule of the X509-SVID standard (no or several URI SANs, a CA leaf, a wrong key usage, ...).
 */
export class SvidInvalidError extends SvidVerificationError<'ERR_SVID_INVALID'> {
  static readonly code = ErrorCode.SVID_INVALID;
}

/** The X.509-SVID is past its notAfter. */
export class SvidExpiredError extends SvidVerificationError<'ERR_SVID_EXPIRED'> {
  static readonly code = ErrorCode.SVID_EXPIRED;
}

/** The SVID (or a certificate vouching for it) belongs to another trust domain than the one expected. */
export class WrongTrustDomainError extends SvidVerificationError<'ERR_WRONG_TRUST_DOMAIN'> {
  static readonly code = ErrorCode.WRONG_TRUST_DOMAIN;
}

/**
 * A delegated identity claims a scope its parent did not hold (refused by the verifier, and by the server at grant
 * time).
 */
export class ScopeEscalationError extends SvidVerificationError<'ERR_SCOPE_ESCALATION'> {
  static readonly code = ErrorCode.SCOPE_ESCALATION;
}

/** A delegated identity outlives its parent. */
export class LifetimeEscalationError extends SvidVerificationError<'ERR_LIFETIME_ESCALATION'> {
  static readonly code = ErrorCode.LIFETIME_ESCALATION;
}

/** The delegation chain is deeper than allowed. */
export class DelegationTooDeepError extends SvidVerificationError<'ERR_DELEGATION_TOO_DEEP'> {
  static readonly code = ErrorCode.DELEGATION_TOO_DEEP;
}

/** A delegated identity names another root session or principal than its parent. */
export class RootChangedError extends SvidVerificationError<'ERR_ROOT_CHANGED'> {
  static readonly code = ErrorCode.ROOT_CHANGED;
}

/** A link of the delegation chain does not match the parent it names. */
export class DelegationLinkInvalidError extends SvidVerificationError<'ERR_DELEGATION_LINK_INVALID'> {
  static readonly code = ErrorCode.DELEGATION_LINK_INVALID;
}

/** The signature of a delegation binding does not verify against the delegator's key. */
export class DelegationSignatureInvalidError extends SvidVerificationError<'ERR_DELEGATION_SIGNATURE_INVALID'> {
  static readonly code = ErrorCode.DELEGATION_SIGNATURE_INVALID;
}

/**
 * The agent context attributes a hop, the principal or the issuing server to another trust domain than the leaf's:
 * a CA vouched for something outside its trust domain.
 */
export class ContextForeignDomainError extends SvidVerificationError<'ERR_CONTEXT_FOREIGN_DOMAIN'> {
  static readonly code = ErrorCode.CONTEXT_FOREIGN_DOMAIN;
}

/**
 * A delegation link carries its parent's SVID chain (the proof a link from another trust domain needs), and that
 * chain does not verify against its own trust domain's bundle, or does not name exactly what the link claims.
 */
export class ParentChainInvalidError extends SvidVerificationError<'ERR_PARENT_CHAIN_INVALID'> {
  static readonly code = ErrorCode.PARENT_CHAIN_INVALID;
}

/** The SVID, its session, or its root session has been revoked. */
export class RevokedError extends LanyardError<'ERR_REVOKED'> {
  static readonly code = ErrorCode.REVOKED;
}

/**
 * The verifier's revocation state is older than its staleness bound (the feed is down or blocked), so a session
 * SVID cannot be told apart from an ended one (RevocationCache with onStale 'refuse'). A refusal of the verifier's
 * own state, not of the peer.
 */
export class RevocationStaleError extends LanyardError<'ERR_REVOCATION_STALE'> {
  static readonly code = ErrorCode.REVOCATION_STALE;
}

/** A verified peer is not allowed by an authorizer, or a caller may not make this call. */
export class AuthorizationError extends LanyardError<'ERR_UNAUTHORIZED'> {
  static readonly code = ErrorCode.UNAUTHORIZED;
}

/** A request or call argument is invalid; the message names the field. */
export class InvalidArgumentError extends LanyardError<'ERR_INVALID_ARGUMENT'> {
  static readonly code = ErrorCode.INVALID_ARGUMENT;
}

/** A file, socket or disk operation failed; a retry later may succeed. */
export class IoError extends LanyardError<'ERR_IO'> {
  static readonly code = ErrorCode.IO;
}

/** An internal invariant failed: a bug or a corrupted state, never the caller's fault. */
export class InternalError extends LanyardError<'ERR_INTERNAL'> {
  static readonly code = ErrorCode.INTERNAL;
}

/** The configuration file, environment or flags are invalid; the message names the field. */
export class ConfigError extends LanyardError<'ERR_INVALID_CONFIG'> {
  static readonly code = ErrorCode.INVALID_CONFIG;
}

/** A stored object (entry, join token, CA authority, key, session) does not exist. */
export class NotFoundError extends LanyardError<'ERR_NOT_FOUND'> {
  static readonly code = ErrorCode.NOT_FOUND;
}

/** A stored object with the same identity (id, or SPIFFE ID + parent + selector set) already exists. */
export class AlreadyExistsError extends LanyardError<'ERR_ALREADY_EXISTS'> {
  static readonly code = ErrorCode.ALREADY_EXISTS;
}

/** Optimistic concurrency: the caller's revision is not the stored one. Re-read and retry. */
export class RevisionConflictError extends LanyardError<
  'ERR_REVISION_CONFLICT',
  LanyardErrorOptions & { currentRevision?: number }
> {
  static readonly code = ErrorCode.REVISION_CONFLICT;
  /** The stored revision (absent when rebuilt from a remote status). */
  declare readonly currentRevision?: number;
}

/** The store is closed (the server is shutting down). */
export class StoreClosedError extends StoreError<'ERR_STORE_CLOSED'> {
  static readonly code = ErrorCode.STORE_CLOSED;
}

/** The database was migrated by a newer Lanyard than this one; it is not touched. */
export class StoreSchemaTooNewError extends StoreError<'ERR_STORE_SCHEMA_TOO_NEW'> {
  static readonly code = ErrorCode.STORE_SCHEMA_TOO_NEW;
}

/**
 * A join token or attestation token is unknown or does not authenticate the runtime. The message never contains
 * the token.
 */
export class TokenInvalidError extends AttestationError<'ERR_TOKEN_INVALID'> {
  static readonly code = ErrorCode.TOKEN_INVALID;
}

/** A join token or attestation token is past its expiry. */
export class TokenExpiredError extends AttestationError<'ERR_TOKEN_EXPIRED'> {
  static readonly code = ErrorCode.TOKEN_EXPIRED;
}

/** A join token was already used: each token attests once. */
export class TokenSpentError extends AttestationError<'ERR_TOKEN_SPENT'> {
  static readonly code = ErrorCode.TOKEN_SPENT;
}

/** An attestor this server does not know or has not enabled. */
export class AttestorUnknownError extends AttestationError<'ERR_ATTESTOR_UNKNOWN'> {
  static readonly code = ErrorCode.ATTESTOR_UNKNOWN;
}

/** Attestation evidence (or a principal token) that does not parse. */
export class MalformedEvidenceError extends AttestationError<'ERR_MALFORMED_EVIDENCE'> {
  static readonly code = ErrorCode.MALFORMED_EVIDENCE;
}

/** An attestation token (or principal token) is before its nbf/iat. */
export class TokenNotYetValidError extends AttestationError<'ERR_TOKEN_NOT_YET_VALID'> {
  static readonly code = ErrorCode.TOKEN_NOT_YET_VALID;
}

/** An attestation token (or principal token) is for another audience. */
export class TokenAudienceMismatchError extends AttestationError<'ERR_TOKEN_AUDIENCE_MISMATCH'> {
  static readonly code = ErrorCode.TOKEN_AUDIENCE_MISMATCH;
}

/** An attestation token is from another issuer than the one configured. */
export class TokenIssuerMismatchError extends AttestationError<'ERR_TOKEN_ISSUER_MISMATCH'> {
  static readonly code = ErrorCode.TOKEN_ISSUER_MISMATCH;
}

/** The runtime failed the proof-of-possession challenge. */
export class ChallengeFailedError extends AttestationError<'ERR_CHALLENGE_FAILED'> {
  static readonly code = ErrorCode.CHALLENGE_FAILED;
}

/** The runtime did not answer the proof-of-possession challenge in time. */
export class ChallengeTimeoutError extends AttestationError<'ERR_CHALLENGE_TIMEOUT'> {
  static readonly code = ErrorCode.CHALLENGE_TIMEOUT;
}

/**
 * The CA is not started, is closed, or has no usable signing key: a retry later (or on another server) may
 * succeed.
 */
export class CaNotReadyError extends CaError<'ERR_CA_NOT_READY'> {
  static readonly code = ErrorCode.CA_NOT_READY;
}

/** `activate` without a prepared CA: the operator runs `prepare` first. */
export class CaNotPreparedError extends CaError<'ERR_CA_NOT_PREPARED'> {
  static readonly code = ErrorCode.CA_NOT_PREPARED;
}

/** A new CA failed its self-test (it could not sign and verify a test certificate); it is not used. */
export class CaSelfTestFailedError extends CaError<'ERR_CA_SELF_TEST_FAILED'> {
  static readonly code = ErrorCode.CA_SELF_TEST_FAILED;
}

/** A private key file (or its directory) is readable by others than its owner; it is not loaded. */
export class KeyFileInsecureError extends KeyManagerError<'ERR_KEY_FILE_INSECURE'> {
  static readonly code = ErrorCode.KEY_FILE_INSECURE;
}

/** A stored private key cannot be read or does not decode. */
export class KeyUnreadableError extends KeyManagerError<'ERR_KEY_UNREADABLE'> {
  static readonly code = ErrorCode.KEY_UNREADABLE;
}

/** Attested, but no registration entry grants this runtime an identity (or its entry is gone). */
export class NoMatchingEntryError extends IssuanceError<'ERR_NO_MATCHING_ENTRY'> {
  static readonly code = ErrorCode.NO_MATCHING_ENTRY;
}

/** Several entries match and the caller did not say which one (AttestParams.spiffe_id): it must choose. */
export class EntryAmbiguousError extends IssuanceError<'ERR_ENTRY_AMBIGUOUS'> {
  static readonly code = ErrorCode.ENTRY_AMBIGUOUS;
}

/** An mTLS-only call (Renew, remote admin, ...) arrived without a client certificate. */
export class ClientCertRequiredError extends IssuanceError<'ERR_CLIENT_CERT_REQUIRED'> {
  static readonly code = ErrorCode.CLIENT_CERT_REQUIRED;
}

/** A principal token from an issuer this server was not configured to trust: it authenticates nobody. */
export class PrincipalIssuerUnknownError extends SessionError<'ERR_PRINCIPAL_ISSUER_UNKNOWN'> {
  static readonly code = ErrorCode.PRINCIPAL_ISSUER_UNKNOWN;
}

/** The caller's entry lacks can_assert_principal. */
export class PrincipalAssertionNotAllowedError extends SessionError<'ERR_PRINCIPAL_ASSERTION_NOT_ALLOWED'> {
  static readonly code = ErrorCode.PRINCIPAL_ASSERTION_NOT_ALLOWED;
}

/** Delegation needs a session SVID (from StartSession or RedeemGrant), not a workload SVID. */
export class NotASessionError extends SessionError<'ERR_NOT_A_SESSION'> {
  static readonly code = ErrorCode.NOT_A_SESSION;
}

/** The session has ended (EndSession, or revocation). */
export class SessionEndedError extends SessionError<'ERR_SESSION_ENDED'> {
  static readonly code = ErrorCode.SESSION_ENDED;
}

/** The session is past its lifetime. */
export class SessionExpiredError extends SessionError<'ERR_SESSION_EXPIRED'> {
  static readonly code = ErrorCode.SESSION_EXPIRED;
}

/**
 * A session SVID whose session this server cannot vouch for: not stored (pruned, or another server's database), or
 * stored before the server recorded what the session hangs on. Refused, never guessed.
 */
export class SessionUnknownError extends SessionError<'ERR_SESSION_UNKNOWN'> {
  static readonly code = ErrorCode.SESSION_UNKNOWN;
}

/** The caller's entry may not delegate to the named workload. */
export class DelegateNotAllowedError extends SessionError<'ERR_DELEGATE_NOT_ALLOWED'> {
  static readonly code = ErrorCode.DELEGATE_NOT_ALLOWED;
}

/**
 * The delegation binding does not decode, is not signed by the caller's key, or does not match the caller's
 * session.
 */
export class GrantBindingInvalidError extends SessionError<'ERR_GRANT_BINDING_INVALID'> {
  static readonly code = ErrorCode.GRANT_BINDING_INVALID;
}

/** No delegation grant with that id exists. */
export class GrantNotFoundError extends SessionError<'ERR_GRANT_NOT_FOUND'> {
  static readonly code = ErrorCode.GRANT_NOT_FOUND;
}

/** The grant was issued to another workload than the one redeeming it. */
export class GrantWrongRedeemerError extends SessionError<'ERR_GRANT_WRONG_REDEEMER'> {
  static readonly code = ErrorCode.GRANT_WRONG_REDEEMER;
}

/** The grant was already redeemed: each grant is redeemed once. */
export class GrantReplayedError extends SessionError<'ERR_GRANT_REPLAYED'> {
  static readonly code = ErrorCode.GRANT_REPLAYED;
}

/** The grant is past its expiry. */
export class GrantExpiredError extends SessionError<'ERR_GRANT_EXPIRED'> {
  static readonly code = ErrorCode.GRANT_EXPIRED;
}

/** The CSR is for another key than the one the parent's binding names. */
export class GrantKeyMismatchError extends SessionError<'ERR_GRANT_KEY_MISMATCH'> {
  static readonly code = ErrorCode.GRANT_KEY_MISMATCH;
}

/** A grant for a key this service did not offer the caller, or offered too long ago. */
export class HandoffKeyUnknownError extends LanyardError<'ERR_HANDOFF_KEY_UNKNOWN'> {
  static readonly code = ErrorCode.HANDOFF_KEY_UNKNOWN;
}

/** The service holds as many offered handoff keys as it allows. */
export class HandoffKeysExhaustedError extends LanyardError<'ERR_HANDOFF_KEYS_EXHAUSTED'> {
  static readonly code = ErrorCode.HANDOFF_KEYS_EXHAUSTED;
}

/**
 * The workload has no current SVID to present (not fetched yet, expired without renewal, or the source was
 * closed); a retry once the source has its SVID may succeed.
 */
export class SourceNotReadyError extends LanyardError<'ERR_SOURCE_NOT_READY'> {
  static readonly code = ErrorCode.SOURCE_NOT_READY;
}

/**
 * A Cedar policy file does not parse or validate against the Lanyard schema (the message names the file); on a
 * reload the server keeps the last good set.
 */
export class PolicyInvalidError extends PolicyError<'ERR_POLICY_INVALID'> {
  static readonly code = ErrorCode.POLICY_INVALID;
}

/** The policy set did not permit the request (deny by default). */
export class PolicyDeniedError extends PolicyError<
  'ERR_POLICY_DENIED',
  LanyardErrorOptions & { policyReason?: string; policyVersion?: string }
> {
  static readonly code = ErrorCode.POLICY_DENIED;
  /** The reason the policy gave, when it gave one. */
  declare readonly policyReason?: string;
  /** The version of the policy set that decided. */
  declare readonly policyVersion?: string;
}

/** A record or line is not a valid audit record. */
export class AuditRecordInvalidError extends AuditError<'ERR_AUDIT_RECORD_INVALID'> {
  static readonly code = ErrorCode.AUDIT_RECORD_INVALID;
}

/**
 * The audit hash chain (or its signatures, checkpoints or witnesses) does not verify: the trail has lost
 * integrity.
 */
export class AuditChainBrokenError extends AuditError<'ERR_AUDIT_CHAIN_BROKEN'> {
  static readonly code = ErrorCode.AUDIT_CHAIN_BROKEN;
}

/**
 * A record could not be made durable; the action it describes is then not acknowledged, and a retry later may
 * succeed.
 */
export class AuditWriteFailedError extends AuditError<'ERR_AUDIT_WRITE_FAILED'> {
  static readonly code = ErrorCode.AUDIT_WRITE_FAILED;
}

/** A workload shipped more audit records or bytes than its quota allows in the current window. */
export class AuditQuotaExceededError extends AuditError<'ERR_AUDIT_QUOTA_EXCEEDED'> {
  static readonly code = ErrorCode.AUDIT_QUOTA_EXCEEDED;
}

/**
 * A caller asks for an identity that is not its own (an agent for an entry not under it, a local workload entitled
 * to nothing).
 */
export class NotEntitledError extends LanyardError<'ERR_NOT_ENTITLED'> {
  static readonly code = ErrorCode.NOT_ENTITLED;
}

/** A Workload API call without the `workload.spiffe.io: true` header. */
export class SecurityHeaderMissingError extends LanyardError<'ERR_SECURITY_HEADER_MISSING'> {
  static readonly code = ErrorCode.SECURITY_HEADER_MISSING;
}

/** A JWT-SVID that does not validate. */
export class JwtSvidInvalidError extends LanyardError<'ERR_JWT_SVID_INVALID'> {
  static readonly code = ErrorCode.JWT_SVID_INVALID;
}

/** The agent has nothing cached yet and cannot reach the server; a retry later may succeed. */
export class AgentNotReadyError extends LanyardError<'ERR_AGENT_NOT_READY'> {
  static readonly code = ErrorCode.AGENT_NOT_READY;
}

/**
 * A local caller's process could not be attested (it vanished or changed while it was being attested): fail
 * closed.
 */
export class WorkloadAttestationFailedError extends LanyardError<'ERR_WORKLOAD_ATTESTATION_FAILED'> {
  static readonly code = ErrorCode.WORKLOAD_ATTESTATION_FAILED;
}

/**
 * An HTTP request target whose path has no one meaning (dot segments, encoded '/', absolute-form, ...), refused
 * before any policy sees it.
 */
export class InvalidRequestTargetError extends LanyardError<'ERR_INVALID_REQUEST_TARGET'> {
  static readonly code = ErrorCode.INVALID_REQUEST_TARGET;
}

/** The TLS stack refused the client certificate and the SVID verifier could not name a reason of its own. */
export class ClientCertRejectedError extends LanyardError<'ERR_CLIENT_CERT_REJECTED'> {
  static readonly code = ErrorCode.CLIENT_CERT_REJECTED;
}

/** Request bytes that do not decode as the gRPC method's protobuf message. */
export class MalformedRequestError extends LanyardError<'ERR_MALFORMED_REQUEST'> {
  static readonly code = ErrorCode.MALFORMED_REQUEST;
}

/**
 * A per-agent or per-connection limit of the server (live sessions, sessions ended in a window, revocation
 * watchers): refused before anything is written; a retry after the window, or with fewer open, may succeed.
 */
export class QuotaExceededError extends LanyardError<'ERR_QUOTA_EXCEEDED'> {
  static readonly code = ErrorCode.QUOTA_EXCEEDED;
}

/** A foreign bundle whose spiffe_sequence is lower than the stored one: an old bundle replayed. */
export class BundleSequenceRegressedError extends FederationError<'ERR_BUNDLE_SEQUENCE_REGRESSED'> {
  static readonly code = ErrorCode.BUNDLE_SEQUENCE_REGRESSED;
}

/** A bundle endpoint that could not be reached, timed out or answered with something other than a bundle. */
export class FederationFetchFailedError extends FederationError<'ERR_FEDERATION_FETCH_FAILED'> {
  static readonly code = ErrorCode.FEDERATION_FETCH_FAILED;
}

/** An https_spiffe bundle endpoint without an SVID the stored bundle verifies, or not the pinned SPIFFE ID. */
export class FederationEndpointUnauthenticatedError extends FederationError<'ERR_FEDERATION_ENDPOINT_UNAUTHENTICATED'> {
  static readonly code = ErrorCode.FEDERATION_ENDPOINT_UNAUTHENTICATED;
}

/** An entry names a trust domain in federates_with that has no federation relationship. */
export class FederationRelationshipMissingError extends FederationError<'ERR_FEDERATION_RELATIONSHIP_MISSING'> {
  static readonly code = ErrorCode.FEDERATION_RELATIONSHIP_MISSING;
}

/** A relationship cannot be deleted while entries federate with its trust domain. */
export class FederationRelationshipInUseError extends FederationError<'ERR_FEDERATION_RELATIONSHIP_IN_USE'> {
  static readonly code = ErrorCode.FEDERATION_RELATIONSHIP_IN_USE;
}

/** Every concrete Lanyard error: `switch (e.code)` on it narrows `e` to the class of the code. */
export type AnyLanyardError =
  | InvalidSpiffeIdError
  | InvalidTrustDomainError
  | InvalidBundleError
  | BundleNotFoundError
  | MalformedCertificateError
  | MalformedCsrError
  | CsrSignatureInvalidError
  | UnsupportedKeyError
  | UnsupportedAlgorithmError
  | MalformedPemError
  | MalformedAgentContextError
  | AgentContextTooLargeError
  | UnsupportedAgentContextVersionError
  | AgentContextOidMismatchError
  | InvalidAgentContextOidError
  | ChainEmptyError
  | ChainTooLongError
  | UnknownAuthorityError
  | SignatureInvalidError
  | CertExpiredError
  | CertNotYetValidError
  | NotACaError
  | PathLenExceededError
  | KeyUsageInvalidError
  | UnknownCriticalExtensionError
  | NameConstraintsViolatedError
  | CertProfileInvalidError
  | SvidInvalidError
  | SvidExpiredError
  | WrongTrustDomainError
  | ScopeEscalationError
  | LifetimeEscalationError
  | DelegationTooDeepError
  | RootChangedError
  | DelegationLinkInvalidError
  | DelegationSignatureInvalidError
  | ContextForeignDomainError
  | ParentChainInvalidError
  | RevokedError
  | RevocationStaleError
  | AuthorizationError
  | InvalidArgumentError
  | IoError
  | InternalError
  | ConfigError
  | NotFoundError
  | AlreadyExistsError
  | RevisionConflictError
  | StoreClosedError
  | StoreSchemaTooNewError
  | TokenInvalidError
  | TokenExpiredError
  | TokenSpentError
  | AttestorUnknownError
  | MalformedEvidenceError
  | TokenNotYetValidError
  | TokenAudienceMismatchError
  | TokenIssuerMismatchError
  | ChallengeFailedError
  | ChallengeTimeoutError
  | CaNotReadyError
  | CaNotPreparedError
  | CaSelfTestFailedError
  | KeyFileInsecureError
  | KeyUnreadableError
  | NoMatchingEntryError
  | EntryAmbiguousError
  | ClientCertRequiredError
  | PrincipalIssuerUnknownError
  | PrincipalAssertionNotAllowedError
  | NotASessionError
  | SessionEndedError
  | SessionExpiredError
  | SessionUnknownError
  | DelegateNotAllowedError
  | GrantBindingInvalidError
  | GrantNotFoundError
  | GrantWrongRedeemerError
  | GrantReplayedError
  | GrantExpiredError
  | GrantKeyMismatchError
  | HandoffKeyUnknownError
  | HandoffKeysExhaustedError
  | SourceNotReadyError
  | PolicyInvalidError
  | PolicyDeniedError
  | AuditRecordInvalidError
  | AuditChainBrokenError
  | AuditWriteFailedError
  | AuditQuotaExceededError
  | NotEntitledError
  | SecurityHeaderMissingError
  | JwtSvidInvalidError
  | AgentNotReadyError
  | WorkloadAttestationFailedError
  | InvalidRequestTargetError
  | ClientCertRejectedError
  | MalformedRequestError
  | QuotaExceededError
  | BundleSequenceRegressedError
  | FederationFetchFailedError
  | FederationEndpointUnauthenticatedError
  | FederationRelationshipMissingError
  | FederationRelationshipInUseError;

/**
 * The error(s) whose code can be `C`: the class of `C`, plus InvalidSpiffeIdError for ERR_INVALID_TRUST_DOMAIN
 * (the one class widened to its subclass's code).
 */
export type LanyardErrorOf<C extends LanyardErrorCode> = C extends LanyardErrorCode
  ? AnyLanyardError extends infer E
    ? E extends { readonly code: infer K }
      ? C extends K
        ? E
        : never
      : never
    : never
  : never;

/** A concrete error class: `new` with a message, and its code as a static. */
export interface LanyardErrorClass<C extends LanyardErrorCode = LanyardErrorCode> {
  readonly code: LanyardErrorCode;
  readonly name: string;
  new (message: string, options?: LanyardErrorOptions): LanyardErrorOf<C>;
}

/** The class of every code. The compiler holds it complete, and each class to the code it is filed under. */
export const errorClasses: { readonly [C in LanyardErrorCode]: LanyardErrorClass<C> } = {
  ERR_INVALID_SPIFFE_ID: InvalidSpiffeIdError,
  ERR_INVALID_TRUST_DOMAIN: InvalidTrustDomainError,
  ERR_INVALID_BUNDLE: InvalidBundleError,
  ERR_BUNDLE_NOT_FOUND: BundleNotFoundError,
  ERR_MALFORMED_CERTIFICATE: MalformedCertificateError,
  ERR_MALFORMED_CSR: MalformedCsrError,
  ERR_CSR_SIGNATURE_INVALID: CsrSignatureInvalidError,
  ERR_UNSUPPORTED_KEY: UnsupportedKeyError,
  ERR_UNSUPPORTED_ALGORITHM: UnsupportedAlgorithmError,
  ERR_MALFORMED_PEM: MalformedPemError,
  ERR_MALFORMED_AGENT_CONTEXT: MalformedAgentContextError,
  ERR_AGENT_CONTEXT_TOO_LARGE: AgentContextTooLargeError,
  ERR_UNSUPPORTED_AGENT_CONTEXT_VERSION: UnsupportedAgentContextVersionError,
  ERR_AGENT_CONTEXT_OID_MISMATCH: AgentContextOidMismatchError,
  ERR_INVALID_AGENT_CONTEXT_OID: InvalidAgentContextOidError,
  ERR_CHAIN_EMPTY: ChainEmptyError,
  ERR_CHAIN_TOO_LONG: ChainTooLongError,
  ERR_UNKNOWN_AUTHORITY: UnknownAuthorityError,
  ERR_SIGNATURE_INVALID: SignatureInvalidError,
  ERR_CERT_EXPIRED: CertExpiredError,
  ERR_CERT_NOT_YET_VALID: CertNotYetValidError,
  ERR_NOT_A_CA: NotACaError,
  ERR_PATH_LEN_EXCEEDED: PathLenExceededError,
  ERR_KEY_USAGE_INVALID: KeyUsageInvalidError,
  ERR_UNKNOWN_CRITICAL_EXTENSION: UnknownCriticalExtensionError,
  ERR_NAME_CONSTRAINTS_VIOLATED: NameConstraintsViolatedError,
  ERR_CERT_PROFILE_INVALID: CertProfileInvalidError,
  ERR_SVID_INVALID: SvidInvalidError,
  ERR_SVID_EXPIRED: SvidExpiredError,
  ERR_WRONG_TRUST_DOMAIN: WrongTrustDomainError,
  ERR_SCOPE_ESCALATION: ScopeEscalationError,
  ERR_LIFETIME_ESCALATION: LifetimeEscalationError,
  ERR_DELEGATION_TOO_DEEP: DelegationTooDeepError,
  ERR_ROOT_CHANGED: RootChangedError,
  ERR_DELEGATION_LINK_INVALID: DelegationLinkInvalidError,
  ERR_DELEGATION_SIGNATURE_INVALID: DelegationSignatureInvalidError,
  ERR_CONTEXT_FOREIGN_DOMAIN: ContextForeignDomainError,
  ERR_PARENT_CHAIN_INVALID: ParentChainInvalidError,
  ERR_REVOKED: RevokedError,
  ERR_REVOCATION_STALE: RevocationStaleError,
  ERR_UNAUTHORIZED: AuthorizationError,
  ERR_INVALID_ARGUMENT: InvalidArgumentError,
  ERR_IO: IoError,
  ERR_INTERNAL: InternalError,
  ERR_INVALID_CONFIG: ConfigError,
  ERR_NOT_FOUND: NotFoundError,
  ERR_ALREADY_EXISTS: AlreadyExistsError,
  ERR_REVISION_CONFLICT: RevisionConflictError,
  ERR_STORE_CLOSED: StoreClosedError,
  ERR_STORE_SCHEMA_TOO_NEW: StoreSchemaTooNewError,
  ERR_TOKEN_INVALID: TokenInvalidError,
  ERR_TOKEN_EXPIRED: TokenExpiredError,
  ERR_TOKEN_SPENT: TokenSpentError,
  ERR_ATTESTOR_UNKNOWN: AttestorUnknownError,
  ERR_MALFORMED_EVIDENCE: MalformedEvidenceError,
  ERR_TOKEN_NOT_YET_VALID: TokenNotYetValidError,
  ERR_TOKEN_AUDIENCE_MISMATCH: TokenAudienceMismatchError,
  ERR_TOKEN_ISSUER_MISMATCH: TokenIssuerMismatchError,
  ERR_CHALLENGE_FAILED: ChallengeFailedError,
  ERR_CHALLENGE_TIMEOUT: ChallengeTimeoutError,
  ERR_CA_NOT_READY: CaNotReadyError,
  ERR_CA_NOT_PREPARED: CaNotPreparedError,
  ERR_CA_SELF_TEST_FAILED: CaSelfTestFailedError,
  ERR_KEY_FILE_INSECURE: KeyFileInsecureError,
  ERR_KEY_UNREADABLE: KeyUnreadableError,
  ERR_NO_MATCHING_ENTRY: NoMatchingEntryError,
  ERR_ENTRY_AMBIGUOUS: EntryAmbiguousError,
  ERR_CLIENT_CERT_REQUIRED: ClientCertRequiredError,
  ERR_PRINCIPAL_ISSUER_UNKNOWN: PrincipalIssuerUnknownError,
  ERR_PRINCIPAL_ASSERTION_NOT_ALLOWED: PrincipalAssertionNotAllowedError,
  ERR_NOT_A_SESSION: NotASessionError,
  ERR_SESSION_ENDED: SessionEndedError,
  ERR_SESSION_EXPIRED: SessionExpiredError,
  ERR_SESSION_UNKNOWN: SessionUnknownError,
  ERR_DELEGATE_NOT_ALLOWED: DelegateNotAllowedError,
  ERR_GRANT_BINDING_INVALID: GrantBindingInvalidError,
  ERR_GRANT_NOT_FOUND: GrantNotFoundError,
  ERR_GRANT_WRONG_REDEEMER: GrantWrongRedeemerError,
  ERR_GRANT_REPLAYED: GrantReplayedError,
  ERR_GRANT_EXPIRED: GrantExpiredError,
  ERR_GRANT_KEY_MISMATCH: GrantKeyMismatchError,
  ERR_HANDOFF_KEY_UNKNOWN: HandoffKeyUnknownError,
  ERR_HANDOFF_KEYS_EXHAUSTED: HandoffKeysExhaustedError,
  ERR_SOURCE_NOT_READY: SourceNotReadyError,
  ERR_POLICY_INVALID: PolicyInvalidError,
  ERR_POLICY_DENIED: PolicyDeniedError,
  ERR_AUDIT_RECORD_INVALID: AuditRecordInvalidError,
  ERR_AUDIT_CHAIN_BROKEN: AuditChainBrokenError,
  ERR_AUDIT_WRITE_FAILED: AuditWriteFailedError,
  ERR_AUDIT_QUOTA_EXCEEDED: AuditQuotaExceededError,
  ERR_NOT_ENTITLED: NotEntitledError,
  ERR_SECURITY_HEADER_MISSING: SecurityHeaderMissingError,
  ERR_JWT_SVID_INVALID: JwtSvidInvalidError,
  ERR_AGENT_NOT_READY: AgentNotReadyError,
  ERR_WORKLOAD_ATTESTATION_FAILED: WorkloadAttestationFailedError,
  ERR_INVALID_REQUEST_TARGET: InvalidRequestTargetError,
  ERR_CLIENT_CERT_REJECTED: ClientCertRejectedError,
  ERR_MALFORMED_REQUEST: MalformedRequestError,
  ERR_QUOTA_EXCEEDED: QuotaExceededError,
  ERR_BUNDLE_SEQUENCE_REGRESSED: BundleSequenceRegressedError,
  ERR_FEDERATION_FETCH_FAILED: FederationFetchFailedError,
  ERR_FEDERATION_ENDPOINT_UNAUTHENTICATED: FederationEndpointUnauthenticatedError,
  ERR_FEDERATION_RELATIONSHIP_MISSING: FederationRelationshipMissingError,
  ERR_FEDERATION_RELATIONSHIP_IN_USE: FederationRelationshipInUseError,
};

/** True for every error Lanyard throws on purpose, typed so that `switch (e.code)` narrows to the class. */
export function isLanyardError(e: unknown): e is AnyLanyardError {
  return e instanceof LanyardError;
}

/** True when `code` is one of Lanyard's stable codes (e.g. one read back from a remote status). */
export function isLanyardErrorCode(code: unknown): code is LanyardErrorCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(errorClasses, code);
}

/**
 * The error of class `code` with `message`: how a client turns a remote refusal (the code sent in a status's
 * trailing metadata) back into the error the server threw.
 */
export function errorFromCode<C extends LanyardErrorCode>(
  code: C,
  message: string,
  options?: LanyardErrorOptions,
): LanyardErrorOf<C> {
  const Class: LanyardErrorClass<C> = errorClasses[code];
  return new Class(message, options);
}
