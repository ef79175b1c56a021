import assert from 'node:assert/strict';
import { dnsMatches, uriHost, uriMatches } from '../../src/verify/name-constraints';

describe('name constraint matching (RFC 5280 §4.2.1.10)', () => {
  it('extracts the host of a URI, without userinfo or port, lower-cased', () => {
    assert.equal(uriHost('spiffe://Example.ORG/a/b'), 'example.org');
    assert.equal(uriHost('https://user@host.example.org:8443/x'), 'host.example.org');
    assert.equal(uriHost('spiffe://example.org'), 'example.org');
  });

  it('finds no comparable host in a URI without authority, or with an IP literal', () => {
    assert.equal(uriHost('urn:example:x'), undefined);
    assert.equal(uriHost('https://10.0.0.1/x'), undefined);
    assert.equal(uriHost('https://[::1]/x'), undefined);
    assert.equal(uriHost('spiffe:///path'), undefined);
  });

  it('URI: a constraint without a leading dot matches that host exactly', () => {
    assert.equal(uriMatches('spiffe://example.org/w', 'example.org'), true);
    assert.equal(uriMatches('spiffe://EXAMPLE.org/w', 'example.ORG'), true);
    assert.equal(uriMatches('spiffe://a.example.org/w', 'example.org'), false);
    assert.equal(uriMatches('spiffe://badexample.org/w', 'example.org'), false);
  });

  it('URI: a constraint with a leading dot matches hosts below it only', () => {
    assert.equal(uriMatches('spiffe://a.example.org/w', '.example.org'), true);
    assert.equal(uriMatches('spiffe://x.a.example.org/w', '.example.org'), true);
    assert.equal(uriMatches('spiffe://example.org/w', '.example.org'), false);
    assert.equal(uriMatches('spiffe://aexample.org/w', '.example.org'), false);
  });

  it('URI: cannot compare a URI without a host', () => {
    assert.equal(uriMatches('urn:x', 'example.org'), undefined);
  });

  it('DNS: the constraint and any name below it at a label boundary', () => {
    assert.equal(dnsMatches('example.org', 'example.org'), true);
    assert.equal(dnsMatches('a.b.example.org', 'example.org'), true);
    assert.equal(dnsMatches('badexample.org', 'example.org'), false);
    assert.equal(dnsMatches('example.org.', 'Example.Org'), true);
  });

  it('DNS: a leading dot means proper subdomains only; the empty constraint matches everything', () => {
    assert.equal(dnsMatches('a.example.org', '.example.org'), true);
    assert.equal(dnsMatches('example.org', '.example.org'), false);
    assert.equal(dnsMatches('anything.test', ''), true);
  });
});
