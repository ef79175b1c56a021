/**
 * The helpers a go-spiffe user reaches for when building IDs from parts (spiffeid.AppendPath, AppendSegments,
 * ReplacePath, ReplaceSegments, FormatPath, JoinPathSegments, ValidatePath, ValidatePathSegment) and JSON
 * both ways (MarshalText / UnmarshalText).
 */
import assert from 'node:assert/strict';
import { InvalidTrustDomainError } from '../../src/errors';
import {
  formatPath,
  joinPathSegments,
  SpiffeId,
  SpiffeIdRule as R,
  TrustDomain,
  validatePath,
  validatePathSegment,
} from '../../src/spiffe';
import { assertIdRule, assertTrustDomainRule } from './assert-rule';

const base = SpiffeId.parse('spiffe://example.org/agents');

describe('SpiffeId append and replace', () => {
  it("appendPath adds a path after the ID's own; replacePath swaps it; the trust domain stays", () => {
    assert.equal(base.appendPath('/planner/7').toString(), 'spiffe://example.org/agents/planner/7');
    assert.equal(base.appendPath('').toString(), base.toString());
    assert.equal(base.replacePath('/tools/search').toString(), 'spiffe://example.org/tools/search');
    assert.equal(base.replacePath('').toString(), 'spiffe://example.org');
    assert.ok(base.replacePath('/x').trustDomain.equals(base.trustDomain));
  });

  it('appendSegments and replaceSegments take one path element per argument', () => {
    assert.equal(base.appendSegments('a', 'b').toString(), 'spiffe://example.org/agents/a/b');
    assert.equal(base.replaceSegments('tools', 'search').path, '/tools/search');
    assert.equal(base.replaceSegments().toString(), 'spiffe://example.org');
  });

  it('refuses an invalid path or segment with the rule it breaks, and leaves the ID as it was', () => {
    assertIdRule(() => base.appendPath('planner'), R.PATH_LEADING_SLASH);
    assertIdRule(() => base.appendPath('/a//b'), R.PATH_EMPTY_SEGMENT);
    assertIdRule(() => base.appendPath('/..'), R.PATH_DOT_SEGMENT);
    assertIdRule(() => base.appendPath('/a/'), R.PATH_TRAILING_SLASH);
    assertIdRule(() => base.replacePath('/a b'), R.PATH_SEGMENT_CHARS);
    // A "/" inside a segment is refused rather than split: an outside value cannot add path levels.
    assertIdRule(() => base.appendSegments('a/b'), R.PATH_SEGMENT_CHARS);
    assertIdRule(() => base.appendSegments(''), R.PATH_EMPTY_SEGMENT);
    assertIdRule(() => base.replaceSegments('..'), R.PATH_DOT_SEGMENT);
    assert.equal(base.toString(), 'spiffe://example.org/agents');
  });

  it('refuses a result longer than 2048 bytes', () => {
    const long = `/${'a'.repeat(2040)}`;
    assertIdRule(() => base.appendPath(long), R.TOO_LONG);
    assertIdRule(() => base.appendSegments('a'.repeat(2040)), R.TOO_LONG);
  });
});

describe('path helpers', () => {
  it('validatePath accepts "" and valid paths, refuses each broken rule', () => {
    validatePath('');
    validatePath('/a/b.c/D-e_f');
    assertIdRule(() => validatePath('a'), R.PATH_LEADING_SLASH);
    assertIdRule(() => validatePath('/a/./b'), R.PATH_DOT_SEGMENT);
    assertIdRule(() => validatePath('/a%20b'), R.PATH_SEGMENT_CHARS);
    assertIdRule(() => validatePath(7 as unknown as string), R.NOT_A_STRING);
  });

  it('validatePathSegment checks exactly one element', () => {
    validatePathSegment('planner-7');
    assertIdRule(() => validatePathSegment(''), R.PATH_EMPTY_SEGMENT);
    assertIdRule(() => validatePathSegment('.'), R.PATH_DOT_SEGMENT);
    assertIdRule(() => validatePathSegment('a/b'), R.PATH_SEGMENT_CHARS);
  });

  it('joinPathSegments joins with "/" and gives "" for none', () => {
    assert.equal(joinPathSegments('ns', 'prod', 'sa', 'web'), '/ns/prod/sa/web');
    assert.equal(joinPathSegments(), '');
    assertIdRule(() => joinPathSegments('ok', 'not ok'), R.PATH_SEGMENT_CHARS);
  });

  it('formatPath fills a printf-style template and validates the result', () => {
    assert.equal(formatPath('/tenant/%s/agent/%d', 'acme', 7), '/tenant/acme/agent/7');
    // A value cannot smuggle in what the template did not have: the result is validated as a whole.
    assertIdRule(() => formatPath('/tenant/%s', '../admin'), R.PATH_DOT_SEGMENT);
    assertIdRule(() => formatPath('/tenant/%s', 'a b'), R.PATH_SEGMENT_CHARS);
    assert.equal(
      SpiffeId.fromPath('example.org', formatPath('/w/%i', 3)).toString(),
      'spiffe://example.org/w/3',
    );
  });
});

describe('SpiffeId and TrustDomain as JSON', () => {
  it('JSON.stringify writes the string forms; fromJSON reads them back', () => {
    const doc = { id: base, td: base.trustDomain };
    const text = JSON.stringify(doc);
    assert.equal(text, '{"id":"spiffe://example.org/agents","td":"example.org"}');
    const parsed = JSON.parse(text) as { id: unknown; td: unknown };
    assert.ok(SpiffeId.fromJSON(parsed.id).equals(base));
    assert.ok(TrustDomain.fromJSON(parsed.td).equals(base.trustDomain));
    // A reviver turns them back into objects in one pass.
    const revived = JSON.parse(text, (k, v: unknown) =>
      k === 'id' ? SpiffeId.fromJSON(v) : k === 'td' ? TrustDomain.fromJSON(v) : v,
    ) as { id: SpiffeId; td: TrustDomain };
    assert.ok(revived.id instanceof SpiffeId && revived.td instanceof TrustDomain);
  });

  it('TrustDomain.fromJSON also reads the trust domain ID form', () => {
    assert.equal(TrustDomain.fromJSON('spiffe://example.org').name, 'example.org');
  });

  it('fromJSON refuses what is not a valid string: there is no zero value', () => {
    assertIdRule(() => SpiffeId.fromJSON(''), R.EMPTY);
    assertIdRule(() => SpiffeId.fromJSON(null), R.NOT_A_STRING);
    assertIdRule(() => SpiffeId.fromJSON({ id: 'spiffe://example.org/a' }), R.NOT_A_STRING);
    assertIdRule(() => SpiffeId.fromJSON('spiffe://Example.org/a'), R.TRUST_DOMAIN_CHARS);
    assertTrustDomainRule(() => TrustDomain.fromJSON(''), R.TRUST_DOMAIN_MISSING);
    assert.throws(() => TrustDomain.fromJSON(42), InvalidTrustDomainError);
  });
});
