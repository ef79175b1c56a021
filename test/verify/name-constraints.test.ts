import assert from 'node:assert/strict';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { X509Bundle } from '../../src/bundle';
import { ErrorCode } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { verifyX509Svid } from '../../src/verify';
import { dnsMatches, uriHost, uriMatches } from '../../src/verify/name-constraints';
import { HOUR, makeCertDer, makeIntermediate, makeRoot, newKey, NOW } from './helpers/certs';
import { expectCode } from './helpers/expect';

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
      expectCode(() => verify(intermediateDer(permitted(subtree))), ErrorCode.MALFORMED_CERTIFICATE, message);
    }
  });

  it('refuses an empty NameConstraints (ERR_MALFORMED_CERTIFICATE)', () => {
    expectCode(
      () => verify(intermediateDer(new asn.NameConstraints({}))),
      ErrorCode.MALFORMED_CERTIFICATE,
      /NameConstraints is empty/,
    );
  });
});
