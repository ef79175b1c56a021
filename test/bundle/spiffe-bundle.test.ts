import assert from 'node:assert/strict';
import { generateKeyPairSync, KeyObject } from 'node:crypto';
import { parseSpiffeBundle, SpiffeBundleJwk, toSpiffeBundle, X509Bundle } from '../../src/bundle';
import { BundleError, ErrorCode } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { opensslCa, OpensslCa } from '../support/pki-openssl';

const td = TrustDomain.parse('example.org');

function b64(ca: OpensslCa): string {
  return Buffer.from(ca.der).toString('base64');
}

/** An x509-svid entry as a conforming publisher writes it: the certificate's key as JWK, plus x5c. */
function x509Entry(ca: OpensslCa): SpiffeBundleJwk {
  const jwk = ca.cert.publicKey.export({ format: 'jwk' });
  return { ...jwk, kty: jwk.kty!, use: 'x509-svid', x5c: [b64(ca)] };
}

function jwtEntry(kid: string, key: KeyObject): SpiffeBundleJwk {
  const jwk = key.export({ format: 'jwk' });
  return { ...jwk, kty: jwk.kty!, use: 'jwt-svid', kid };
}

function spki(key: KeyObject): string {
  return key.export({ format: 'der', type: 'spki' }).toString('hex');
}

function assertInvalid(input: string | object, message: RegExp): void {
  assert.throws(
    () => parseSpiffeBundle(td, input),
    (e: unknown) => {
      assert.ok(e instanceof BundleError, `expected BundleError, got ${String(e)}`);
      assert.equal(e.code, ErrorCode.INVALID_BUNDLE);
      assert.match(e.message, /^invalid SPIFFE bundle for "example.org": /);
      assert.match(e.message, message);
      return true;
    },
  );
}

const ecJwt = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const rsaJwt = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
const edJwt = generateKeyPairSync('ed25519').publicKey;

describe('parseSpiffeBundle', () => {
  describe('reads', () => {
    it('x509-svid entries of every supported key type, jwt-svid entries, sequence and refresh hint', () => {
      const cas = [opensslCa('p256'), opensslCa('p384'), opensslCa('rsa'), opensslCa('ed25519')];
      const doc = {
        spiffe_sequence: 3,
        spiffe_refresh_hint: 2419200,
        keys: [...cas.map(x509Entry), jwtEntry('ec', ecJwt), jwtEntry('rsa', rsaJwt), jwtEntry('ed', edJwt)],
      };
      const bundle = parseSpiffeBundle(td, JSON.stringify(doc));
      assert.ok(bundle.trustDomain.equals(td));
      assert.deepEqual(
        bundle.x509Authorities.map((c) => c.sha256Hex),
        cas.map((c) => c.cert.sha256Hex),
      );
      assert.deepEqual([...bundle.jwtAuthorities.keys()], ['ec', 'rsa', 'ed']);
      assert.equal(spki(bundle.jwtAuthorities.get('ec')!), spki(ecJwt));
      assert.equal(spki(bundle.jwtAuthorities.get('rsa')!), spki(rsaJwt));
      assert.equal(spki(bundle.jwtAuthorities.get('ed')!), spki(edJwt));
      assert.equal(bundle.sequence, 3);
      assert.equal(bundle.refreshHint, 2419200);
    });

    it('a parsed object and UTF-8 bytes as well as text', () => {
      const doc = { keys: [x509Entry(opensslCa('p256'))] };
      assert.equal(parseSpiffeBundle(td, doc).x509Authorities.length, 1);
      assert.equal(parseSpiffeBundle(td, Buffer.from(JSON.stringify(doc))).x509Authorities.length, 1);
    });

    it('an empty key set, which trusts nothing', () => {
      const bundle = parseSpiffeBundle(td, '{"keys": []}');
      assert.equal(bundle.x509Authorities.length, 0);
      assert.equal(bundle.jwtAuthorities.size, 0);
    });

    it('an x509-svid entry with x5c and kty but no key parameters (the certificate is authoritative)', () => {
      const ca = opensslCa('p256');
      const bundle = parseSpiffeBundle(td, { keys: [{ kty: 'EC', use: 'x509-svid', x5c: [b64(ca)] }] });
      assert.ok(bundle.hasAuthority(ca.cert));
    });

    it('null counters as absent, and parameters the format does not define', () => {
      const doc = {
        spiffe_sequence: null,
        spiffe_refresh_hint: null,
        keys: [],
        issuer: 'x',
        other: { a: 1 },
      };
      const bundle = parseSpiffeBundle(td, doc);
      assert.equal(bundle.sequence, undefined);
      assert.equal(bundle.refreshHint, undefined);
    });
  });

  describe('ignores, as the standard requires', () => {
    const ca = opensslCa('p256');
    const ignored: Array<[string, object]> = [
      ['an unknown use', { ...x509Entry(ca), use: 'x509-svid-v2' }],
      ['a use in the wrong case (values are case-sensitive)', { ...x509Entry(ca), use: 'X509-SVID' }],
      ['a missing use', (({ use: _u, ...rest }) => rest)(x509Entry(ca))],
      ['a non-string use', { ...x509Entry(ca), use: 1 }],
      ['an unknown kty on an x509-svid entry', { ...x509Entry(ca), kty: 'XYZ' }],
      ['a symmetric (oct) jwt-svid key', { kty: 'oct', use: 'jwt-svid', kid: 'k', k: 'c2VjcmV0' }],
      ['an unknown kty on a jwt-svid entry', { kty: 'AKP', use: 'jwt-svid', kid: 'k', pub: 'AAAA' }],
    ];
    for (const [what, entry] of ignored) {
      it(what, () => {
        const bundle = parseSpiffeBundle(td, { keys: [entry, x509Entry(opensslCa('rsa'))] });
        assert.equal(bundle.x509Authorities.length, 1, 'only the valid entry is read');
        assert.equal(bundle.x509Authorities[0]!.sha256Hex, opensslCa('rsa').cert.sha256Hex);
        assert.equal(bundle.jwtAuthorities.size, 0);
      });
    }
  });

  describe('refuses a malformed document', () => {
    it('that is not JSON', () => assertInvalid('{"keys": [', /not valid JSON/));
    it('that is not an object', () => {
      assertInvalid('[]', /must be a JSON object/);
      assertInvalid('null', /must be a JSON object/);
      assertInvalid('"keys"', /must be a JSON object/);
    });
    it('that has no "keys"', () => assertInvalid('{"spiffe_sequence": 1}', /"keys" must be present/));
    it('whose "keys" is not an array', () => assertInvalid('{"keys": {}}', /"keys" must be an array/));
    it('with an entry that is not an object', () =>
      assertInvalid('{"keys": [42]}', /keys\[0\] is not a JSON object/));
    it('that is not UTF-8', () => {
      assert.throws(() => parseSpiffeBundle(td, new Uint8Array([0x7b, 0xff, 0x7d])), /not UTF-8/);
    });

    for (const field of ['spiffe_sequence', 'spiffe_refresh_hint']) {
      it(`with a ${field} that is not a non-negative safe integer`, () => {
        for (const bad of ['-1', '1.5', '"1"', 'true', '18446744073709551615', '9007199254740992']) {
          assertInvalid(
            `{"${field}": ${bad}, "keys": []}`,
            new RegExp(`"${field}" must be a non-negative integer`),
          );
        }
      });
    }
  });

  describe('refuses a malformed x509-svid entry', () => {
    const ca = opensslCa('p256');
    const entry = x509Entry(ca);
    const cases: Array<[string, object, RegExp]> = [
      ['without kty', (({ kty: _k, ...rest }) => rest)(entry), /keys\[0\] \(x509-svid\): "kty" must be set/],
      ['without x5c', (({ x5c: _x, ...rest }) => rest)(entry), /"x5c" must be set/],
      ['with x5c not an array', { ...entry, x5c: b64(ca) }, /"x5c" must be set to an array/],
      ['with an empty x5c', { ...entry, x5c: [] }, /exactly one certificate, found 0/],
      [
        'with two certificates in x5c',
        { ...entry, x5c: [b64(ca), b64(opensslCa('rsa'))] },
        /exactly one certificate, found 2/,
      ],
      [
        'with x5c in base64url',
        { ...entry, x5c: [b64(ca).replace(/\+/g, '-').replace(/\//g, '_') + '-_'] },
        /standard-base64/,
      ],
      ['with a non-string x5c entry', { ...entry, x5c: [1] }, /standard-base64/],
      [
        'with x5c that is not a certificate',
        { ...entry, x5c: ['MAMCAQE='] },
        /not a valid X.509 certificate/,
      ],
      [
        'whose kty does not match the certificate',
        { ...x509Entry(opensslCa('rsa')), kty: 'EC' },
        /"kty" is "EC" but the certificate's key is RSA/,
      ],
      [
        'whose key parameters belong to another key',
        { ...x509Entry(opensslCa('p256', 'example.org', 'b')), x5c: [b64(ca)] },
        /do not match the certificate's public key/,
      ],
      ['whose key parameters are broken', { ...entry, x: 'AAAA' }, /do not form a valid EC public key/],
      ['whose key parameter is not a string', { ...entry, y: 5 }, /"y" must be a string/],
      ['that carries a private key', { ...entry, d: 'AAAA' }, /private key material \("d"\)/],
    ];
    for (const [what, bad, message] of cases) {
      it(what, () => assertInvalid({ keys: [bad] }, message));
    }

    it('and names the entry by its index', () =>
      assertInvalid({ keys: [entry, { ...entry, x5c: [] }] }, /keys\[1\]/));
  });

  describe('refuses a malformed jwt-svid entry', () => {
    const entry = jwtEntry('k1', ecJwt);
    const cases: Array<[string, object, RegExp]> = [
      ['without kid', (({ kid: _k, ...rest }) => rest)(entry), /keys\[0\] \(jwt-svid\): "kid" must be set/],
      ['with an empty kid', { ...entry, kid: '' }, /"kid" must be set/],
      ['with a non-string kid', { ...entry, kid: 7 }, /"kid" must be set/],
      ['without kty', (({ kty: _k, ...rest }) => rest)(entry), /"kty" must be set/],
      [
        'without key parameters',
        { kty: 'EC', use: 'jwt-svid', kid: 'k' },
        /do not form a valid EC public key/,
      ],
      ['with a point not on the curve', { ...entry, y: entry.x }, /do not form a valid EC public key/],
      ['that carries a private key', { ...entry, d: 'AAAA' }, /private key material \("d"\)/],
    ];
    for (const [what, bad, message] of cases) {
      it(what, () => assertInvalid({ keys: [bad] }, message));
    }

    it('whose kid repeats an earlier one', () =>
      assertInvalid(
        { keys: [entry, jwtEntry('k1', rsaJwt)] },
        /keys\[1\] \(jwt-svid\): "kid" "k1" appears more than once/,
      ));
  });
});

describe('toSpiffeBundle', () => {
  it('writes one x509-svid entry per authority: key as JWK, the DER in x5c, no kid', () => {
    const ca = opensslCa('p256');
    const doc = toSpiffeBundle(X509Bundle.fromDer(td, [ca.der]));
    assert.deepEqual(doc, { keys: [x509Entry(ca)] });
    const [entry] = doc.keys;
    assert.equal(entry!.use, 'x509-svid');
    assert.equal(entry!.kid, undefined);
    assert.deepEqual(entry!.x5c, [b64(ca)]);
    assert.equal(entry!.crv, 'P-256');
  });

  it('writes jwt-svid entries with their kid, and the counters when set', () => {
    const bundle = new X509Bundle(td, { jwtAuthorities: [['k1', rsaJwt]], sequence: 2, refreshHint: 60 });
    const doc = toSpiffeBundle(bundle);
    assert.equal(doc.spiffe_sequence, 2);
    assert.equal(doc.spiffe_refresh_hint, 60);
    assert.deepEqual(doc.keys, [jwtEntry('k1', rsaJwt)]);
    assert.equal(doc.keys[0]!.d, undefined);
  });

  it('omits the counters when the bundle has none', () => {
    const doc = toSpiffeBundle(X509Bundle.fromDer(td, []));
    assert.deepEqual(doc, { keys: [] });
  });

  it('refuses a key with no JWK form', () => {
    const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).publicKey;
    const bundle = new X509Bundle(td, { jwtAuthorities: [['pss', pss]] });
    assert.throws(
      () => toSpiffeBundle(bundle),
      (e: unknown) => e instanceof BundleError && /JWT authority "pss"/.test(e.message),
    );
  });

  describe('round trip', () => {
    function assertSameBundle(a: X509Bundle, b: X509Bundle): void {
      assert.ok(a.trustDomain.equals(b.trustDomain));
      assert.deepEqual(
        a.x509Authorities.map((c) => c.sha256Hex),
        b.x509Authorities.map((c) => c.sha256Hex),
      );
      assert.deepEqual([...a.jwtAuthorities.keys()], [...b.jwtAuthorities.keys()]);
      for (const [kid, key] of a.jwtAuthorities) assert.equal(spki(b.jwtAuthorities.get(kid)!), spki(key));
      assert.equal(a.sequence, b.sequence);
      assert.equal(a.refreshHint, b.refreshHint);
    }

    it('bundle -> JSON -> bundle keeps every authority and counter', () => {
      const bundle = new X509Bundle(td, {
        x509Authorities: [opensslCa('p256'), opensslCa('p384'), opensslCa('rsa'), opensslCa('ed25519')].map(
          (c) => c.cert,
        ),
        jwtAuthorities: [
          ['ec', ecJwt],
          ['rsa', rsaJwt],
          ['ed', edJwt],
        ],
        sequence: 42,
        refreshHint: 300,
      });
      assertSameBundle(bundle, parseSpiffeBundle(td, JSON.stringify(toSpiffeBundle(bundle))));
    });

    it('an empty bundle stays empty', () => {
      const bundle = new X509Bundle(td, { sequence: 0 });
      assertSameBundle(bundle, parseSpiffeBundle(td, JSON.stringify(toSpiffeBundle(bundle))));
    });

    it('JSON -> bundle -> JSON is stable', () => {
      const doc = { spiffe_sequence: 1, keys: [x509Entry(opensslCa('rsa')), jwtEntry('k', edJwt)] };
      assert.deepEqual(toSpiffeBundle(parseSpiffeBundle(td, doc)), doc);
    });
  });
});
