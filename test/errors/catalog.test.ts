/**
 * The error catalog is complete and consistent: every code has a class that fixes it, a gRPC status and an
 * HTTP status, and a remote code comes back as the class it was thrown as.
 */
import assert from 'node:assert/strict';
import {
  AgentContextError,
  AttestationError,
  AuditError,
  BundleError,
  CaError,
  CertExpiredError,
  ErrorCode,
  errorClasses,
  errorFromCode,
  FederationError,
  isLanyardError,
  InvalidSpiffeIdError,
  InvalidTrustDomainError,
  isLanyardErrorCode,
  IssuanceError,
  KeyManagerError,
  LanyardError,
  type LanyardErrorCode,
  type LanyardErrorOptions,
  MalformedInputError,
  NoMatchingEntryError,
  PathValidationError,
  PolicyError,
  RevisionConflictError,
  RevokedError,
  SessionError,
  StoreError,
  SvidVerificationError,
} from '../../src/errors';
import { GrpcStatus, grpcStatusByCode, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { httpStatusByCode, httpStatusOf } from '../../src/internal/http-status-map';

const codes = Object.values(ErrorCode) as LanyardErrorCode[];

describe('error catalog', () => {
  it('has distinct codes, each with a class, a gRPC status and an HTTP status, and nothing else', () => {
    assert.equal(new Set(codes).size, codes.length);
    assert.deepEqual(Object.keys(errorClasses).sort(), [...codes].sort());
    assert.deepEqual(Object.keys(grpcStatusByCode).sort(), [...codes].sort());
    assert.deepEqual(Object.keys(httpStatusByCode).sort(), [...codes].sort());
    const grpcStatuses = new Set<number>(Object.values(GrpcStatus));
    for (const code of codes) {
      assert.ok(grpcStatuses.has(grpcStatusByCode[code]), `${code}: gRPC status ${grpcStatusByCode[code]}`);
      assert.notEqual(grpcStatusByCode[code], GrpcStatus.OK, code);
      const http = httpStatusByCode[code];
      assert.ok(Number.isInteger(http) && http >= 400 && http <= 599, `${code}: HTTP ${http}`);
    }
  });

  it('gives each code its own class, whose static and instance code are that code', () => {
    const seen = new Set<unknown>();
    for (const code of codes) {
      const Class = errorClasses[code];
      assert.ok(!seen.has(Class), `${Class.name} is filed under two codes`);
      seen.add(Class);
      assert.equal(Class.code, code, `${Class.name}.code`);
      const e = new Class('why', { cause: 'c' });
      assert.ok(e instanceof LanyardError && e instanceof Error);
      assert.equal(e.code, code);
      assert.equal(e.name, Class.name);
      assert.equal(e.message, 'why');
      assert.equal(e.cause, 'c');
      assert.ok(isLanyardError(e));
      assert.equal(grpcStatusOf(e), grpcStatusByCode[code]);
      assert.equal(httpStatusOf(e), httpStatusByCode[code]);
      // Library errors carry no transport status: the edges map the code.
      assert.ok(!('grpcStatus' in e), `${Class.name} carries a grpcStatus`);
    }
  });

  it('rebuilds a remote refusal as the class of its code, and recognises only real codes', () => {
    for (const code of codes) {
      const e = errorFromCode(code, `remote ${code}`);
      assert.ok(e instanceof errorClasses[code]);
      assert.equal(e.code, code);
      assert.ok(isLanyardErrorCode(code));
    }
    for (const notACode of ['ERR_NOPE', '', 'toString', '__proto__', 42, undefined, null]) {
      assert.equal(isLanyardErrorCode(notACode), false, String(notACode));
    }
    assert.equal(isLanyardError(new Error('x')), false);
    assert.equal(isLanyardError({ code: 'ERR_REVOKED', message: 'look-alike' }), false);
  });

  it("answers HTTP with the class of the code's gRPC status, as the hop helpers always did", () => {
    // The HTTP edge tells a caller what the gRPC status does, coarser: not authenticated (401), refused (403),
    // cannot decide now (503), a bug (500); 400 only for a request target with no one meaning.
    const expected: Partial<Record<LanyardErrorCode, number>> = {
      ERR_SVID_EXPIRED: 401,
      ERR_UNKNOWN_AUTHORITY: 401,
      ERR_TOKEN_INVALID: 401,
      ERR_REVOCATION_STALE: 503,
      ERR_SOURCE_NOT_READY: 503,
      ERR_AUDIT_WRITE_FAILED: 503,
      ERR_INTERNAL: 500,
      ERR_CA_SELF_TEST_FAILED: 500,
      ERR_INVALID_REQUEST_TARGET: 400,
      ERR_POLICY_DENIED: 403,
      ERR_SCOPE_ESCALATION: 403,
      ERR_MALFORMED_CERTIFICATE: 403,
      ERR_AUDIT_CHAIN_BROKEN: 403,
      ERR_QUOTA_EXCEEDED: 403,
      ERR_NOT_FOUND: 403,
    };
    for (const [code, status] of Object.entries(expected)) {
      assert.equal(httpStatusByCode[code as LanyardErrorCode], status, code);
    }
    const httpFor: Partial<Record<number, number>> = {
      [GrpcStatus.UNAUTHENTICATED]: 401,
      [GrpcStatus.UNAVAILABLE]: 503,
      [GrpcStatus.INTERNAL]: 500,
    };
    for (const code of codes) {
      const status =
        code === ErrorCode.INVALID_REQUEST_TARGET ? 400 : (httpFor[grpcStatusByCode[code]] ?? 403);
      assert.equal(httpStatusByCode[code], status, code);
    }
  });

  it('constructs only the class filed under a code: a family, or a second class of a code, throws', () => {
    // What plain JavaScript (or a cast) could do; TypeScript refuses the abstract ones at compile time.
    const construct = (Class: unknown): unknown => new (Class as new (message: string) => unknown)('x');
    for (const family of [LanyardError, PathValidationError, SessionError, FederationError, PolicyError]) {
      assert.throws(() => construct(family), { name: 'TypeError', message: /is abstract/ }, family.name);
    }
    // A subclass inherits its parent's code: it would throw that code as a second class.
    class BoundEntryGone extends NoMatchingEntryError {}
    assert.throws(() => new BoundEntryGone('x'), {
      name: 'TypeError',
      message: 'BoundEntryGone is not the class of ERR_NO_MATCHING_ENTRY: throw NoMatchingEntryError',
    });
    // ...and so would one that repeats another class's code.
    class AnotherRevoked extends LanyardError<'ERR_REVOKED'> {
      static readonly code = ErrorCode.REVOKED;
    }
    assert.throws(() => new AnotherRevoked('x'), { name: 'TypeError', message: /throw RevokedError/ });
    // The one subclass with a code of its own is its own class.
    assert.ok(new InvalidTrustDomainError('x') instanceof InvalidSpiffeIdError);
  });

  it('sets the details a class takes as fields when given, and never over what the error already says', () => {
    const e = new RevisionConflictError('stale', { currentRevision: 7, cause: 'c' });
    assert.equal(e.currentRevision, 7);
    assert.equal(e.cause, 'c');
    const bare = new RevisionConflictError('stale');
    assert.ok(!('currentRevision' in bare), 'an absent detail is no field');
    const located = new CertExpiredError('old', { certIndex: 0, certSha256Hex: 'ab' });
    assert.deepEqual([located.certIndex, located.certSha256Hex], [0, 'ab']);
    assert.equal(new CertExpiredError('old', { certSha256Hex: undefined }).certSha256Hex, undefined);
    // Options from plain JavaScript cannot rename, recode or reword the error.
    const forged = { code: 'ERR_INTERNAL', name: 'Other', message: 'other', stack: 'x', toString: 'x' };
    const f = new RevokedError('revoked', forged as unknown as LanyardErrorOptions);
    assert.deepEqual([f.code, f.name, f.message], ['ERR_REVOKED', 'RevokedError', 'revoked']);
    assert.notEqual(f.stack, 'x');
    assert.equal(typeof f.toString, 'function');
  });

  it('files each code under its family, so instanceof a family still catches it', () => {
    const cases: [LanyardErrorCode, abstract new (...args: never[]) => LanyardError][] = [
      [ErrorCode.INVALID_TRUST_DOMAIN, InvalidSpiffeIdError],
      [ErrorCode.BUNDLE_NOT_FOUND, BundleError],
      [ErrorCode.MALFORMED_PEM, MalformedInputError],
      [ErrorCode.AGENT_CONTEXT_OID_MISMATCH, AgentContextError],
      [ErrorCode.CERT_EXPIRED, PathValidationError],
      [ErrorCode.SCOPE_ESCALATION, SvidVerificationError],
      [ErrorCode.TOKEN_SPENT, AttestationError],
      [ErrorCode.CA_NOT_READY, CaError],
      [ErrorCode.KEY_UNREADABLE, KeyManagerError],
      [ErrorCode.NO_MATCHING_ENTRY, IssuanceError],
      [ErrorCode.GRANT_REPLAYED, SessionError],
      [ErrorCode.POLICY_DENIED, PolicyError],
      [ErrorCode.AUDIT_CHAIN_BROKEN, AuditError],
      [ErrorCode.STORE_CLOSED, StoreError],
    ];
    for (const [code, family] of cases) assert.ok(errorFromCode(code, 'x') instanceof family, code);
    // ...and not under another one: a code is in exactly one family.
    assert.ok(!(errorFromCode(ErrorCode.INVALID_ARGUMENT, 'x') instanceof MalformedInputError));
    assert.ok(!(errorFromCode(ErrorCode.SIGNATURE_INVALID, 'x') instanceof AttestationError));
  });
});
