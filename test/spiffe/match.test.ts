import assert from 'node:assert/strict';
import { matchAny, matchId, matchMemberOf, matchOneOf, SpiffeId, TrustDomain } from '../../src/spiffe';

const a = SpiffeId.parse('spiffe://example.org/a');
const b = SpiffeId.parse('spiffe://example.org/b');
const foreign = SpiffeId.parse('spiffe://other.org/a');
const tdId = SpiffeId.parse('spiffe://example.org');

describe('matchers', () => {
  it('matchAny matches every ID', () => {
    const m = matchAny();
    for (const id of [a, b, foreign, tdId]) assert.ok(m(id));
  });

  it('matchId matches only an equal ID (a fresh parse, not just the same object)', () => {
    const m = matchId(a);
    assert.ok(m(SpiffeId.parse('spiffe://example.org/a')));
    assert.ok(!m(b));
    assert.ok(!m(foreign), 'same path in another trust domain');
    assert.ok(!m(SpiffeId.parse('spiffe://example.org/a/b')), 'a child path');
  });

  it('matchOneOf matches any listed ID and nothing else', () => {
    const m = matchOneOf(a, b);
    assert.ok(m(a));
    assert.ok(m(b));
    assert.ok(!m(foreign));
    assert.ok(!m(tdId));
  });

  it('matchOneOf with no IDs matches nothing', () => {
    const m = matchOneOf();
    assert.ok(!m(a));
  });

  it('matchMemberOf matches the whole trust domain and nothing outside it', () => {
    const m = matchMemberOf(TrustDomain.parse('example.org'));
    assert.ok(m(a));
    assert.ok(m(tdId));
    assert.ok(!m(foreign));
    assert.ok(!m(SpiffeId.parse('spiffe://sub.example.org/a')), 'a subdomain is another trust domain');
  });
});
