import assert from 'node:assert/strict';
import { InvalidArgumentError, InvalidSpiffeIdError, InvalidTrustDomainError } from '../../src/errors';
import { GrpcStatus, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { SpiffeId, SpiffeIdRule, TrustDomain } from '../../src/spiffe';
import { assertTrustDomainRule } from './assert-rule';

const R = SpiffeIdRule;
const TD_CHARS = new Set('abcdefghijklmnopqrstuvwxyz0123456789.-_');

describe('TrustDomain.parse', () => {
  it('accepts a bare name', () => {
    const td = TrustDomain.parse('example.org');
    assert.equal(td.name, 'example.org');
    assert.equal(td.idString(), 'spiffe://example.org');
    assert.equal(td.toString(), 'example.org');
    assert.equal(JSON.stringify(td), '"example.org"');
  });

  it("accepts the trust domain's own SPIFFE ID", () => {
    assert.equal(TrustDomain.parse('spiffe://example.org').name, 'example.org');
  });

  it('accepts exactly 255 bytes and refuses 256', () => {
    assert.equal(TrustDomain.parse('a'.repeat(255)).name.length, 255);
    assertTrustDomainRule(() => TrustDomain.parse('a'.repeat(256)), R.TRUST_DOMAIN_TOO_LONG);
  });

  // Every code point up to 0xFF, the way go-spiffe checks it: ASCII and the Latin-1 range beyond it.
  it('accepts exactly [a-z0-9._-] among the first 256 code points, bare and as an ID', () => {
    for (let c = 0; c < 256; c++) {
      const ch = String.fromCharCode(c);
      const name = `trustdomain${ch}`;
      if (TD_CHARS.has(ch)) {
        assert.equal(TrustDomain.parse(name).name, name);
        assert.equal(TrustDomain.parse(`spiffe://${name}`).name, name);
      } else {
        assert.throws(() => TrustDomain.parse(name), InvalidTrustDomainError, `code point ${c}`);
      }
    }
  });

  const invalid: Array<[string, string, (typeof R)[keyof typeof R]]> = [
    ['empty', '', R.TRUST_DOMAIN_MISSING],
    ['uppercase', 'Example.org', R.TRUST_DOMAIN_CHARS],
    ['non-ASCII', 'exämple.org', R.TRUST_DOMAIN_CHARS],
    ['a "/" in a bare name', 'example.org/x', R.TRUST_DOMAIN_CHARS],
    ['port', 'example.org:443', R.TRUST_DOMAIN_PORT],
    ['userinfo', 'user@example.org', R.TRUST_DOMAIN_USERINFO],
    ['percent-encoding', '%65xample.org', R.TRUST_DOMAIN_PERCENT_ENCODED],
    ['an ID with a path', 'spiffe://example.org/workload', R.TRUST_DOMAIN_WITH_PATH],
    ['an ID with a trailing slash', 'spiffe://example.org/', R.PATH_TRAILING_SLASH],
    ['an ID with no trust domain', 'spiffe://', R.TRUST_DOMAIN_MISSING],
    ['an ID with an uppercase trust domain', 'spiffe://Example.org', R.TRUST_DOMAIN_CHARS],
    ['an ID with a port', 'spiffe://example.org:8443', R.TRUST_DOMAIN_PORT],
    ['an ID with a query', 'spiffe://example.org?x', R.QUERY],
    ['one slash after the scheme', 'spiffe:/example.org', R.SCHEME],
    ['uppercase scheme', 'SPIFFE://example.org', R.SCHEME],
    ['another scheme', 'https://example.org', R.SCHEME],
  ];
  for (const [what, input, rule] of invalid) {
    it(`refuses ${what}: ${JSON.stringify(input)}`, () => {
      assertTrustDomainRule(() => TrustDomain.parse(input), rule);
    });
  }

  it('refuses a value that is not a string', () => {
    assertTrustDomainRule(() => TrustDomain.parse(null as unknown as string), R.NOT_A_STRING);
  });

  it('the error carries the stable code and gRPC status', () => {
    try {
      TrustDomain.parse('Example.org');
      assert.fail('expected a throw');
    } catch (e) {
      assert.ok(e instanceof InvalidTrustDomainError);
      assert.equal(e.code, 'ERR_INVALID_TRUST_DOMAIN');
      assert.equal(grpcStatusOf(e), GrpcStatus.INVALID_ARGUMENT);
      assert.equal(e.name, 'InvalidTrustDomainError');
      assert.equal(e.message, `invalid trust domain "Example.org": ${R.TRUST_DOMAIN_CHARS}`);
      assert.equal(e.rule, 'TRUST_DOMAIN_CHARS');
    }
  });

  it('is an InvalidSpiffeIdError too, so one instanceof catches every ID and trust-domain parse failure', () => {
    const failures: [string, () => unknown, string, string][] = [
      [
        'TrustDomain.parse',
        () => TrustDomain.parse('Example.org'),
        'ERR_INVALID_TRUST_DOMAIN',
        'TRUST_DOMAIN_CHARS',
      ],
      [
        'TrustDomain.parse (URI form)',
        () => TrustDomain.parse('spiffe://example.org/w'),
        'ERR_INVALID_TRUST_DOMAIN',
        'TRUST_DOMAIN_WITH_PATH',
      ],
      [
        'SpiffeId.fromPath (bad trust domain)',
        () => SpiffeId.fromPath('a:b', '/w'),
        'ERR_INVALID_TRUST_DOMAIN',
        'TRUST_DOMAIN_PORT',
      ],
      [
        'SpiffeId.fromSegments (bad trust domain)',
        () => SpiffeId.fromSegments('', 'w'),
        'ERR_INVALID_TRUST_DOMAIN',
        'TRUST_DOMAIN_MISSING',
      ],
      [
        'SpiffeId.parse',
        () => SpiffeId.parse('spiffe://Example.org/w'),
        'ERR_INVALID_SPIFFE_ID',
        'TRUST_DOMAIN_CHARS',
      ],
      [
        'SpiffeId.fromPath (bad path)',
        () => SpiffeId.fromPath('example.org', 'w'),
        'ERR_INVALID_SPIFFE_ID',
        'PATH_LEADING_SLASH',
      ],
    ];
    for (const [what, fn, code, rule] of failures) {
      assert.throws(fn, (e: unknown) => {
        assert.ok(
          e instanceof InvalidSpiffeIdError,
          `${what}: expected an InvalidSpiffeIdError, got ${String(e)}`,
        );
        assert.equal(e.code, code, what);
        assert.equal(e.rule, rule, what);
        return true;
      });
    }
    // A valid trust domain still parses (control), and an unrelated LanyardError is not caught by it.
    assert.equal(TrustDomain.parse('example.org').name, 'example.org');
    assert.ok(!(new InvalidArgumentError('x') instanceof InvalidSpiffeIdError));
  });
});

describe('TrustDomain.equals', () => {
  it('compares names', () => {
    assert.ok(TrustDomain.parse('example.org').equals(TrustDomain.parse('spiffe://example.org')));
    assert.ok(!TrustDomain.parse('example.org').equals(TrustDomain.parse('example.com')));
  });
});
