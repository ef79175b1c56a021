/**
 * Type-level tests, held by `npm run typecheck`: `switch (e.code)` narrows a Lanyard error to the class of the
 * code, the switch can be exhaustive, the base class cannot be thrown bare, and no error carries a transport
 * status. The runtime assertions only keep mocha honest about the values the narrowed branches read.
 */
import assert from 'node:assert/strict';
import {
  type AnyLanyardError,
  CertExpiredError,
  ErrorCode,
  type ErrorFamilyCodes,
  errorFromCode,
  InvalidSpiffeIdError,
  InvalidTrustDomainError,
  isLanyardError,
  LanyardError,
  type LanyardErrorCode,
  PathValidationError,
  PolicyDeniedError,
  RevisionConflictError,
} from '../../src/errors';

/** What a caller reads from a refusal, using a field only the narrowed class has. */
function detail(e: unknown): string {
  if (!isLanyardError(e)) return 'not ours';
  switch (e.code) {
    case 'ERR_REVISION_CONFLICT':
      return `stored revision ${e.currentRevision ?? '?'}`; // RevisionConflictError only
    case 'ERR_POLICY_DENIED':
      return `policy ${e.policyVersion ?? '?'}: ${e.policyReason ?? ''}`; // PolicyDeniedError only
    case 'ERR_AGENT_CONTEXT_OID_MISMATCH':
      return `${e.foundOid ?? '?'} != ${e.expectedOid ?? '?'}`;
    case 'ERR_CERT_EXPIRED':
      return `certificate ${e.certIndex ?? '?'}`; // the PathValidationError family
    case 'ERR_INVALID_TRUST_DOMAIN':
      return `rule ${e.rule ?? '?'}`;
    default:
      return e.code;
  }
}

/** Compiles only if the union of classes covers every code: `e` is `never` after all cases. */
function everyCode(e: AnyLanyardError): LanyardErrorCode {
  const code = e.code;
  switch (code) {
    case ErrorCode.REVOKED:
      return code;
    default: {
      const rest: Exclude<LanyardErrorCode, 'ERR_REVOKED'> = code;
      return rest;
    }
  }
}

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | undefined {
  return undefined;
}

describe('error types', () => {
  it('switch (e.code) narrows to the class of the code', () => {
    assert.equal(detail(new RevisionConflictError('stale', { currentRevision: 3 })), 'stored revision 3');
    assert.equal(
      detail(new PolicyDeniedError('no', { policyReason: 'read only', policyVersion: 'v7' })),
      'policy v7: read only',
    );
    assert.equal(
      detail(new InvalidTrustDomainError('bad', { rule: 'TRUST_DOMAIN_CHARS' })),
      'rule TRUST_DOMAIN_CHARS',
    );
    assert.equal(detail(errorFromCode('ERR_REVOKED', 'x')), 'ERR_REVOKED');
    assert.equal(everyCode(errorFromCode('ERR_IO', 'x')), 'ERR_IO');
  });

  it('types errorFromCode by its code, and the code union by ErrorCode', () => {
    expectType<Equal<ReturnType<typeof errorFromCode<'ERR_REVISION_CONFLICT'>>, RevisionConflictError>>();
    expectType<Equal<AnyLanyardError['code'], LanyardErrorCode>>();
    expectType<Equal<RevisionConflictError['code'], 'ERR_REVISION_CONFLICT'>>();
    expectType<Equal<(typeof RevisionConflictError)['code'], 'ERR_REVISION_CONFLICT'>>();
    const e = errorFromCode('ERR_POLICY_DENIED', 'x');
    assert.ok(e instanceof PolicyDeniedError);
  });

  it('narrows a caught value by instanceof to the class, or to the family with its codes', () => {
    const caught: unknown = errorFromCode('ERR_CERT_EXPIRED', 'x');
    if (!(caught instanceof PathValidationError)) assert.fail('not a PathValidationError');
    // Not PathValidationError<any>: the family's own codes.
    expectType<Equal<typeof caught.code, ErrorFamilyCodes['PathValidationError']>>();
    assert.equal(caught.certIndex, undefined);
    if (!(caught instanceof CertExpiredError)) assert.fail('not a CertExpiredError');
    expectType<Equal<typeof caught.code, 'ERR_CERT_EXPIRED'>>();
    const other: unknown = new InvalidTrustDomainError('x');
    if (!(other instanceof InvalidSpiffeIdError)) assert.fail('not an InvalidSpiffeIdError');
    expectType<Equal<typeof other.code, 'ERR_INVALID_SPIFFE_ID' | 'ERR_INVALID_TRUST_DOMAIN'>>();
    assert.equal(other.code, 'ERR_INVALID_TRUST_DOMAIN');
    const any: unknown = errorFromCode('ERR_IO', 'x');
    if (!(any instanceof LanyardError)) assert.fail('not a LanyardError');
    expectType<Equal<typeof any.code, LanyardErrorCode>>();
  });

  it('cannot throw the base class bare, nor read a transport status off an error', () => {
    // @ts-expect-error LanyardError is abstract: every throw names the class of its code.
    assert.throws(() => new LanyardError('bare'));
    const e = errorFromCode('ERR_REVOKED', 'x');
    // @ts-expect-error library errors carry no gRPC status; the edges map the code.
    assert.equal(e.grpcStatus, undefined);
    // @ts-expect-error a class fixes its code: the constructor takes no code.
    void new RevisionConflictError(ErrorCode.NOT_FOUND, 'x');
  });
});
