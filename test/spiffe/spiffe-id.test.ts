import assert from 'node:assert/strict';
import { InvalidSpiffeIdError, InvalidTrustDomainError } from '../../src/errors';
import { GrpcStatus, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { SpiffeId, SpiffeIdRule, SpiffeIdRuleMessage, TrustDomain } from '../../src/spiffe';
import { assertIdRule } from './assert-rule';

const R = SpiffeIdRule;

describe('SpiffeId.parse', () => {
  describe('accepts IDs that follow every rule, exactly as written', () => {
    const valid: Array<[input: string, trustDomain: string, path: string]> = [
      ['spiffe://example.org', 'example.org', ''],
      ['spiffe://example.org/workload', 'example.org', '/workload'],
      [
        'spiffe://k8s-west.example.com/ns/staging/sa/default',
        'k8s-west.example.com',
        '/ns/staging/sa/default',
      ],
      [
        'spiffe://example.com/9eebccd2-12bf-40a6-b262-65fe0487d453',
        'example.com',
        '/9eebccd2-12bf-40a6-b262-65fe0487d453',
      ],
      ['spiffe://abcdefghijklmnopqrstuvwxyz0123456789.-_/x', 'abcdefghijklmnopqrstuvwxyz0123456789.-_', '/x'],
      [
        'spiffe://td/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_',
        'td',
        '/ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_',
      ],
      // Dots are fine inside a segment; only "." and ".." as whole segments are dot segments.
      ['spiffe://td/.../.a/a./a..b', 'td', '/.../.a/a./a..b'],
      // A path that looks like another ID is still just segments.
      ['spiffe://td/spiffe/td/x', 'td', '/spiffe/td/x'],
    ];
    for (const [input, td, path] of valid) {
      it(input, () => {
        const id = SpiffeId.parse(input);
        assert.equal(id.toString(), input);
        assert.equal(id.trustDomain.name, td);
        assert.equal(id.path, path);
      });
    }

    it('an ID of exactly 2048 bytes', () => {
      const input = 'spiffe://example.org/' + 'a'.repeat(2048 - 'spiffe://example.org/'.length);
      assert.equal(input.length, 2048);
      assert.equal(SpiffeId.parse(input).toString(), input);
    });

    it('a trust domain of exactly 255 bytes', () => {
      const td = 'a'.repeat(255);
      assert.equal(SpiffeId.parse(`spiffe://${td}/x`).trustDomain.name, td);
    });
  });

  describe('refuses each broken rule with InvalidSpiffeIdError naming it', () => {
    const invalid: Array<[what: string, input: string, rule: SpiffeIdRuleMessage]> = [
      ['empty string', '', R.EMPTY],
      ['another scheme', 'http://example.org/x', R.SCHEME],
      ['uppercase scheme', 'SPIFFE://example.org/x', R.SCHEME],
      ['mixed-case scheme', 'Spiffe://example.org/x', R.SCHEME],
      ['one slash after the scheme', 'spiffe:/example.org/x', R.SCHEME],
      ['no slashes after the scheme', 'spiffe:example.org/x', R.SCHEME],
      ['no scheme', 'example.org/x', R.SCHEME],
      ['empty scheme', '://example.org/x', R.SCHEME],
      ['leading whitespace', ' spiffe://example.org/x', R.SCHEME],
      ['host:port without scheme', '192.168.2.2:6688', R.SCHEME],
      ['nothing after the scheme', 'spiffe://', R.TRUST_DOMAIN_MISSING],
      ['empty trust domain before a path', 'spiffe:///path/element', R.TRUST_DOMAIN_MISSING],
      ['uppercase trust domain', 'spiffe://Example.org/x', R.TRUST_DOMAIN_CHARS],
      ['space in trust domain', 'spiffe://exa mple.org/x', R.TRUST_DOMAIN_CHARS],
      ['non-ASCII trust domain', 'spiffe://exämple.org/x', R.TRUST_DOMAIN_CHARS],
      ['IPv6 literal', 'spiffe://[fe80]/x', R.TRUST_DOMAIN_CHARS],
      ['userinfo', 'spiffe://user@example.org/x', R.TRUST_DOMAIN_USERINFO],
      ['userinfo with password', 'spiffe://user:password@example.org/x', R.TRUST_DOMAIN_USERINFO],
      ['port', 'spiffe://example.org:8080/x', R.TRUST_DOMAIN_PORT],
      ['empty port', 'spiffe://example.org:/x', R.TRUST_DOMAIN_PORT],
      ['percent-encoded trust domain', 'spiffe://%65xample.org/x', R.TRUST_DOMAIN_PERCENT_ENCODED],
      ['trust domain over 255 bytes', `spiffe://${'a'.repeat(256)}/x`, R.TRUST_DOMAIN_TOO_LONG],
      ['query on the trust domain', 'spiffe://example.org?x=1', R.QUERY],
      ['query on the path', 'spiffe://example.org/path/element?query=1', R.QUERY],
      ['empty query', 'spiffe://example.org/x?', R.QUERY],
      ['fragment', 'spiffe://example.org/x#frag', R.FRAGMENT],
      ['fragment containing "?"', 'spiffe://example.org/x#a?b', R.FRAGMENT],
      ['trailing slash on the trust domain', 'spiffe://example.org/', R.PATH_TRAILING_SLASH],
      ['trailing slash on the path', 'spiffe://example.org/path/', R.PATH_TRAILING_SLASH],
      ['empty first segment', 'spiffe://example.org//path', R.PATH_EMPTY_SEGMENT],
      ['empty middle segment', 'spiffe://example.org/a//b', R.PATH_EMPTY_SEGMENT],
      ['"." segment', 'spiffe://example.org/./x', R.PATH_DOT_SEGMENT],
      ['".." segment', 'spiffe://example.org/a/../b', R.PATH_DOT_SEGMENT],
      ['final "." segment', 'spiffe://example.org/a/.', R.PATH_DOT_SEGMENT],
      ['final ".." segment', 'spiffe://example.org/..', R.PATH_DOT_SEGMENT],
      ['percent-encoding in the path', 'spiffe://example.org/a%20b', R.PATH_SEGMENT_CHARS],
      ['space in the path', 'spiffe://example.org/a b', R.PATH_SEGMENT_CHARS],
      ['colon in the path', 'spiffe://example.org/pa:th', R.PATH_SEGMENT_CHARS],
      ['"@" in the path', 'spiffe://example.org/pa@th', R.PATH_SEGMENT_CHARS],
      ['sub-delims in the path', "spiffe://example.org/p!a$t&h'(e)*+,;=", R.PATH_SEGMENT_CHARS],
      ['brackets in the path', 'spiffe://example.org/elem[ent]', R.PATH_SEGMENT_CHARS],
      ['backslash in the path', 'spiffe://example.org/a\\b', R.PATH_SEGMENT_CHARS],
      ['non-ASCII in the path', 'spiffe://example.org/é', R.PATH_SEGMENT_CHARS],
      ['emoji in the path', 'spiffe://example.org/\u{1F92F}', R.PATH_SEGMENT_CHARS],
      ['NUL in the path', 'spiffe://example.org/a\u0000b', R.PATH_SEGMENT_CHARS],
      ['2049 bytes', 'spiffe://example.org/' + 'a'.repeat(2049 - 'spiffe://example.org/'.length), R.TOO_LONG],
      // 1012 characters but 2033 + 12 bytes: the limit is bytes, not UTF-16 units.
      ['over 2048 bytes in fewer characters', 'spiffe://td/' + 'é'.repeat(1100), R.TOO_LONG],
    ];
    for (const [what, input, rule] of invalid) {
      it(`${what}: ${JSON.stringify(input.length > 60 ? input.slice(0, 60) + '…' : input)}`, () => {
        assertIdRule(() => SpiffeId.parse(input), rule);
      });
    }

    it('a value that is not a string (JavaScript callers)', () => {
      assertIdRule(() => SpiffeId.parse(undefined as unknown as string), R.NOT_A_STRING);
      assertIdRule(() => SpiffeId.parse(42 as unknown as string), R.NOT_A_STRING);
    });
  });

  it('the error carries the stable code, the gRPC status and the quoted input', () => {
    try {
      SpiffeId.parse('spiffe://example.org/a/../b');
      assert.fail('expected a throw');
    } catch (e) {
      assert.ok(e instanceof InvalidSpiffeIdError);
      assert.equal(e.code, 'ERR_INVALID_SPIFFE_ID');
      assert.equal(grpcStatusOf(e), GrpcStatus.INVALID_ARGUMENT);
      assert.equal(e.name, 'InvalidSpiffeIdError');
      assert.equal(e.message, `invalid SPIFFE ID "spiffe://example.org/a/../b": ${R.PATH_DOT_SEGMENT}`);
    }
  });

  it('cuts a huge input short in the message', () => {
    try {
      SpiffeId.parse('x'.repeat(1_000_000));
      assert.fail('expected a throw');
    } catch (e) {
      assert.ok(e instanceof InvalidSpiffeIdError);
      assert.ok(e.message.length < 300, `message is ${e.message.length} characters`);
    }
  });
});

describe('SpiffeId.fromSegments', () => {
  const td = TrustDomain.parse('example.org');

  it('joins segments under the trust domain', () => {
    assert.equal(
      SpiffeId.fromSegments(td, 'path', 'element').toString(),
      'spiffe://example.org/path/element',
    );
  });

  it('accepts a trust domain given as a string, bare or as an ID', () => {
    assert.equal(SpiffeId.fromSegments('example.org', 'a').toString(), 'spiffe://example.org/a');
    assert.equal(SpiffeId.fromSegments('spiffe://example.org', 'a').toString(), 'spiffe://example.org/a');
  });

  it('with no segments gives the trust domain ID', () => {
    const id = SpiffeId.fromSegments(td);
    assert.equal(id.toString(), 'spiffe://example.org');
    assert.ok(id.isTrustDomainId());
  });

  it('refuses an empty segment', () =>
    assertIdRule(() => SpiffeId.fromSegments(td, 'a', ''), R.PATH_EMPTY_SEGMENT));
  it('refuses "." and ".."', () => {
    assertIdRule(() => SpiffeId.fromSegments(td, '.'), R.PATH_DOT_SEGMENT);
    assertIdRule(() => SpiffeId.fromSegments(td, 'a', '..'), R.PATH_DOT_SEGMENT);
  });
  it('refuses a "/" inside a segment instead of splitting it', () =>
    assertIdRule(() => SpiffeId.fromSegments(td, 'a/b'), R.PATH_SEGMENT_CHARS));
  it('refuses characters outside the segment set', () =>
    assertIdRule(() => SpiffeId.fromSegments(td, 'pa:th'), R.PATH_SEGMENT_CHARS));
  it('refuses a result over 2048 bytes', () =>
    assertIdRule(
      () => SpiffeId.fromSegments(td, 'a'.repeat(1000), 'b'.repeat(1000), 'c'.repeat(100)),
      R.TOO_LONG,
    ));
  it('refuses a bad trust domain string with InvalidTrustDomainError', () => {
    assert.throws(() => SpiffeId.fromSegments('Example.org', 'a'), InvalidTrustDomainError);
  });
});

describe('SpiffeId.fromPath', () => {
  const td = TrustDomain.parse('example.org');

  it('accepts "" and "/seg/seg"', () => {
    assert.equal(SpiffeId.fromPath(td, '').toString(), 'spiffe://example.org');
    assert.equal(SpiffeId.fromPath(td, '/a/b').toString(), 'spiffe://example.org/a/b');
  });
  it('refuses a path without a leading slash', () =>
    assertIdRule(() => SpiffeId.fromPath(td, 'a/b'), R.PATH_LEADING_SLASH));
  it('refuses a trailing slash', () =>
    assertIdRule(() => SpiffeId.fromPath(td, '/a/'), R.PATH_TRAILING_SLASH));
  it('refuses a lone "/"', () => assertIdRule(() => SpiffeId.fromPath(td, '/'), R.PATH_TRAILING_SLASH));
  it('refuses dot segments', () => assertIdRule(() => SpiffeId.fromPath(td, '/a/./b'), R.PATH_DOT_SEGMENT));
});

describe('SpiffeId accessors', () => {
  const id = SpiffeId.parse('spiffe://example.org/ns/prod');

  it('memberOf compares the trust domain exactly', () => {
    assert.ok(id.memberOf(TrustDomain.parse('example.org')));
    assert.ok(!id.memberOf(TrustDomain.parse('other.example.org')));
    assert.ok(!id.memberOf(TrustDomain.parse('example.org.evil')));
  });

  it('isTrustDomainId is true only without a path', () => {
    assert.ok(!id.isTrustDomainId());
    assert.ok(SpiffeId.parse('spiffe://example.org').isTrustDomainId());
  });

  it('equals compares the whole ID, case-sensitively in the path', () => {
    assert.ok(id.equals(SpiffeId.parse('spiffe://example.org/ns/prod')));
    assert.ok(!id.equals(SpiffeId.parse('spiffe://example.org/ns/Prod')));
    assert.ok(!id.equals(SpiffeId.parse('spiffe://example.org/ns')));
  });

  it('serialises as its string in JSON and templates', () => {
    assert.equal(JSON.stringify({ id }), '{"id":"spiffe://example.org/ns/prod"}');
    assert.equal(`${id}`, 'spiffe://example.org/ns/prod');
  });

  it('is immutable', () => {
    assert.ok(Object.isFrozen(id));
    assert.ok(Object.isFrozen(id.trustDomain));
  });
});
