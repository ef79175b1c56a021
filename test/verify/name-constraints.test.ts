import assert from 'node:assert/strict';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { X509Bundle } from '../../src/bundle';
import { ErrorCode } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { verifyX509Svid } from '../../src/verify';
import {
  dnsMatches,
  emailMatches,
  ipMatches,
  subtreeProblem,
  uriHost,
  uriMatches,
} from '../../src/verify/name-constraints';
import type { NameSubtree } from '../../src/x509/certificate';
import { HOUR, makeCertDer, makeIntermediate, makeRoot, newKey, NOW } from '../support/pki';
import { expectRefusal } from '../support/refusal';

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
    assert.equal(dnsMatches('A.Example.ORG', 'example.org'), true);
    assert.equal(dnsMatches('anything.test', ''), true, 'the empty base contains every name');
  });

  it('DNS: a name that is not a dNSName cannot be compared (a trailing or leading dot, an underscore)', () => {
    for (const bad of ['example.org.', '.example.org', 'foo_bar.example.org', '']) {
      assert.equal(dnsMatches(bad, 'example.org'), undefined, bad);
    }
  });

  it('DNS: a wildcard SAN is inside a permitted subtree only if every name it stands for is', () => {
    assert.equal(dnsMatches('*.example.com', 'example.com', 'permitted'), true);
    assert.equal(dnsMatches('*.a.example.com', 'example.com', 'permitted'), true);
    assert.equal(dnsMatches('*.example.com', 'foo.example.com', 'permitted'), false);
    assert.equal(dnsMatches('*.example.com', 'other.com', 'permitted'), false);
  });

  it('DNS: a wildcard SAN is inside an excluded subtree if any name it stands for is (CVE-2025-61727)', () => {
    assert.equal(dnsMatches('*.example.com', 'bar.example.com', 'excluded'), true);
    assert.equal(dnsMatches('*.example.com', 'BAR.example.com', 'excluded'), true);
    assert.equal(dnsMatches('*.example.com', 'example.com', 'excluded'), true);
    // "*" stands for exactly one label: nothing it matches is below bar.example.com.
    assert.equal(dnsMatches('*.example.com', 'a.bar.example.com', 'excluded'), false);
    assert.equal(dnsMatches('*.example.com', 'example.org', 'excluded'), false);
  });

  it('email: a mailbox exactly (local part case-sensitive, host not), a host, or any host below ".domain"', () => {
    assert.equal(emailMatches('foo@example.com', 'foo@EXAMPLE.com'), true);
    assert.equal(emailMatches('Foo@example.com', 'foo@example.com'), false);
    assert.equal(emailMatches('foo@example.com', 'example.com'), true);
    assert.equal(emailMatches('foo@sub.example.com', 'example.com'), false);
    assert.equal(emailMatches('foo@sub.example.com', '.example.com'), true);
    assert.equal(emailMatches('foo@example.com', '.example.com'), false);
    assert.equal(emailMatches('foo@badexample.com', '.example.com'), false);
  });

  it('email: "*" is an ordinary local-part character, not a wildcard', () => {
    assert.equal(emailMatches('*@example.com', '*@example.com'), true);
    assert.equal(emailMatches('user@example.com', '*@example.com'), false);
    assert.equal(emailMatches('*@example.com', '**@example.com'), false);
    assert.equal(emailMatches('"a b"@example.com', '"a b"@example.com'), true);
  });

  it('email: an address that is not a mailbox cannot be compared', () => {
    for (const bad of [
      'invalid@address@example.com',
      'no-at-sign',
      '@example.com',
      'a@exa_mple.com',
      'a..b@x.org',
    ]) {
      assert.equal(emailMatches(bad, 'example.com'), undefined, bad);
    }
  });

  it('IP: the address is inside when its first prefix-length bits equal the base', () => {
    assert.equal(ipMatches(ip('192.0.2.1'), ipBase('192.0.2.0/24')), true);
    assert.equal(ipMatches(ip('192.0.3.1'), ipBase('192.0.2.0/24')), false);
    assert.equal(ipMatches(ip('10.200.0.1'), ipBase('10.128.0.0/9')), true);
    assert.equal(ipMatches(ip('10.100.0.1'), ipBase('10.128.0.0/9')), false);
    assert.equal(ipMatches(ip('203.0.113.9'), ipBase('0.0.0.0/0')), true);
    assert.equal(ipMatches(ip('2001:db8::1'), ipBase('2001:db8::/32')), true);
    assert.equal(ipMatches(ip('2001:db9::1'), ipBase('2001:db8::/32')), false);
    assert.equal(ipMatches(ip('::1'), ipBase('::1/128')), true);
  });

  it('IP: families never match each other, except an IPv4-mapped IPv6 address, judged as IPv4 too', () => {
    assert.equal(ipMatches(ip('192.0.2.1'), ipBase('::/0')), false);
    assert.equal(ipMatches(ip('2001:db8::1'), ipBase('0.0.0.0/0')), false);
    assert.equal(ipMatches(ip('::ffff:192.0.2.1'), ipBase('192.0.2.0/24')), true);
    assert.equal(ipMatches(ip('::ffff:192.0.3.1'), ipBase('192.0.2.0/24')), false);
  });

  it('IP: a malformed address or a mask with holes is never certainly inside', () => {
    assert.equal(ipMatches(Uint8Array.of(192, 0, 2, 1, 0, 0, 0, 0), ipBase('192.0.2.0/24')), undefined);
    const holes = { kind: 'ip', value: 'x', bytes: Uint8Array.of(10, 0, 0, 0, 255, 0, 255, 0) } as const;
    assert.equal(ipMatches(ip('10.0.0.1'), holes), undefined);
  });

  it('finds malformed constraint bases: DNS with a leading dot or a wildcard, bad mailboxes and IP masks', () => {
    const problem = (kind: NameSubtree['kind'], value: string, bytes?: Uint8Array) =>
      subtreeProblem({ kind, value, ...(bytes ? { bytes } : {}) });
    assert.match(problem('dns', '.example.com') ?? '', /not a DNS name/);
    assert.match(problem('dns', '*.example.com') ?? '', /not a DNS name/);
    assert.match(problem('dns', 'under_score.example.com') ?? '', /not a DNS name/);
    assert.equal(problem('dns', 'example.com'), undefined);
    assert.equal(problem('dns', ''), undefined);
    assert.equal(problem('uri', '.example.org'), undefined);
    assert.equal(problem('uri', 'example.org'), undefined);
    assert.match(problem('uri', 'spiffe://example.org') ?? '', /host/);
    assert.equal(problem('email', 'a@example.com'), undefined);
    assert.equal(problem('email', 'example.com'), undefined);
    assert.equal(problem('email', '.example.com'), undefined);
    assert.match(problem('email', 'invalid@invalid@example.com') ?? '', /mailbox/);
    assert.equal(problem('ip', 'x', ipBase('10.0.0.0/8').bytes), undefined);
    assert.match(problem('ip', 'x', ip('127.0.0.1')) ?? '', /prefix mask/);
    assert.match(problem('ip', 'x', Uint8Array.of(10, 0, 0, 0, 255, 0, 255, 0)) ?? '', /prefix mask/);
  });
});

/** The octets of an IPv4 or IPv6 address (IPv6 with at most one "::", and an optional dotted IPv4 tail). */
function ip(text: string): Uint8Array {
  if (!text.includes(':')) return Uint8Array.from(text.split('.').map(Number));
  let t = text;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    t = `${t.slice(0, -v4[1]!.length)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = t.split('::');
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return Uint8Array.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

/** An iPAddress subtree base from CIDR text. */
function ipBase(cidr: string): NameSubtree {
  const [address, bits] = cidr.split('/');
  const a = ip(address!);
  const mask = new Uint8Array(a.length);
  for (let i = 0; i < Number(bits); i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  const bytes = new Uint8Array(a.length * 2);
  bytes.set(a);
  bytes.set(mask, a.length);
  return { kind: 'ip', value: cidr, bytes };
}

describe('name constraints RFC 5280 forbids in a CA certificate: the whole chain is refused', () => {
  const TD = 'example.org';
  const ID = `spiffe://${TD}/workload`;
  const root = makeRoot(TD);
  const intKey = newKey();

  /** An intermediate, signed by the root, whose NameConstraints extension value is `nc`. */
  const intermediateDer = (nc: asn.NameConstraints): Uint8Array =>
    makeCertDer({
      cn: `${TD} intermediate`,
      key: intKey,
      issuer: root,
      basicConstraints: { ca: true },
      keyUsage: ['keyCertSign', 'cRLSign'],
      uris: [`spiffe://${TD}`],
      extra: [
        { oid: asn.id_ce_nameConstraints, critical: true, value: new Uint8Array(AsnConvert.serialize(nc)) },
      ],
    }).der;
  const permitted = (subtree: Partial<asn.GeneralSubtree>): asn.NameConstraints =>
    new asn.NameConstraints({
      permittedSubtrees: new asn.GeneralSubtrees([
        new asn.GeneralSubtree({ base: new asn.GeneralName({ uniformResourceIdentifier: TD }), ...subtree }),
      ]),
    });
  // The leaf is signed by the intermediate's key; which intermediate certificate vouches for it is the test.
  const leafDer = makeCertDer({
    cn: ID,
    issuer: makeIntermediate(TD, root, { key: intKey }),
    basicConstraints: { ca: false },
    keyUsage: ['digitalSignature'],
    eku: [asn.id_kp_serverAuth, asn.id_kp_clientAuth],
    uris: [ID],
    notAfter: new Date(NOW.getTime() + HOUR),
  }).der;
  const verify = (intermediate: Uint8Array) =>
    verifyX509Svid(
      [leafDer, intermediate],
      new X509Bundle(TrustDomain.parse(TD), { x509Authorities: [root.cert] }),
      {
        at: NOW,
        cache: null,
      },
    );

  it('accepts the same intermediate with a well-formed permitted subtree (control)', () => {
    assert.equal(verify(intermediateDer(permitted({}))).id.toString(), ID);
  });

  it('refuses a GeneralSubtree with minimum 1, with maximum present, or both (ERR_MALFORMED_CERTIFICATE)', () => {
    for (const [subtree, message] of [
      [{ minimum: 1 }, /minimum is 1/],
      [{ maximum: 3 }, /maximum is present/],
      [{ minimum: 2, maximum: 2 }, /minimum is 2/],
    ] as const) {
      expectRefusal(
        () => verify(intermediateDer(permitted(subtree))),
        ErrorCode.MALFORMED_CERTIFICATE,
        message,
      );
    }
  });

  it('refuses an empty NameConstraints (ERR_MALFORMED_CERTIFICATE)', () => {
    expectRefusal(
      () => verify(intermediateDer(new asn.NameConstraints({}))),
      ErrorCode.MALFORMED_CERTIFICATE,
      /NameConstraints is empty/,
    );
  });
});
