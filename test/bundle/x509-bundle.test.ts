import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { X509Bundle } from '../../src/bundle';
import { BundleError, ErrorCode, LanyardError } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { encodePem } from '../../src/x509/pem';
import { opensslCa } from '../support/pki-openssl';

const td = TrustDomain.parse('example.org');

function assertInvalidBundle(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BundleError, `expected BundleError, got ${String(e)}`);
    assert.equal(e.code, ErrorCode.INVALID_BUNDLE);
    assert.match(e.message, message);
    return true;
  });
}

describe('X509Bundle.fromPem', () => {
  it('reads one CA certificate', () => {
    const ca = opensslCa('p256');
    const bundle = X509Bundle.fromPem(td, ca.certPem);
    assert.ok(bundle.trustDomain.equals(td));
    assert.equal(bundle.x509Authorities.length, 1);
    assert.equal(bundle.x509Authorities[0]!.sha256Hex, ca.cert.sha256Hex);
    assert.ok(bundle.hasAuthority(ca.cert));
    assert.equal(bundle.jwtAuthorities.size, 0);
    assert.equal(bundle.sequence, undefined);
    assert.equal(bundle.refreshHint, undefined);
  });

  it('reads every CERTIFICATE block, in order, ignoring text between them', () => {
    const p256 = opensslCa('p256');
    const rsa = opensslCa('rsa');
    const ed = opensslCa('ed25519');
    const pem = `# root of example.org\n${p256.certPem}\nsubject=CN = rsa\n${rsa.certPem}${ed.certPem}`;
    const bundle = X509Bundle.fromPem(td, pem);
    assert.deepEqual(
      bundle.x509Authorities.map((c) => c.sha256Hex),
      [p256, rsa, ed].map((c) => c.cert.sha256Hex),
    );
  });

  it('keeps a certificate listed twice only once', () => {
    const ca = opensslCa('p256');
    assert.equal(X509Bundle.fromPem(td, ca.certPem + ca.certPem).x509Authorities.length, 1);
  });

  it('accepts CRLF line endings', () => {
    const ca = opensslCa('p384');
    assert.equal(X509Bundle.fromPem(td, ca.certPem.replace(/\n/g, '\r\n')).x509Authorities.length, 1);
  });

  // fromPem and fromDer agree on "no certificate": a bundle that trusts nothing, as go-spiffe's Parse gives.
  it('reads empty or blank text as a bundle that trusts nothing, as fromDer of no certificates', () => {
    for (const text of ['', '\n', ' \r\n\t']) {
      const bundle = X509Bundle.fromPem(td, text);
      assert.equal(bundle.x509Authorities.length, 0);
      assert.equal(bundle.toPem(), X509Bundle.fromDer(td, []).toPem());
    }
  });

  it('reads PEM whose blocks are all of other types as a bundle that trusts nothing', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    assert.equal(X509Bundle.fromPem(td, pem).x509Authorities.length, 0);
  });

  it('refuses text that is not empty but holds no PEM block', () =>
    assertInvalidBundle(() => X509Bundle.fromPem(td, 'not a bundle\n'), /no PEM block found/));

  it('refuses a bundle that carries a private key', () => {
    const ca = opensslCa('p256');
    assertInvalidBundle(
      () => X509Bundle.fromPem(td, ca.certPem + ca.keyPem),
      /must not contain a "PRIVATE KEY" block/,
    );
  });

  it('refuses a block cut off before its END line', () => {
    const ca = opensslCa('p256');
    const truncated = ca.certPem.replace('-----END CERTIFICATE-----', '');
    assertInvalidBundle(() => X509Bundle.fromPem(td, opensslCa('rsa').certPem + truncated), /not terminated/);
  });

  it('refuses a block whose body is not base64', () => {
    assertInvalidBundle(
      () => X509Bundle.fromPem(td, '-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n'),
      /unreadable PEM/,
    );
  });

  it('refuses a CERTIFICATE block that does not hold a certificate, keeping the cause', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
    const pem = opensslCa('p256').certPem + encodePem('CERTIFICATE', spki);
    assert.throws(
      () => X509Bundle.fromPem(td, pem),
      (e: unknown) =>
        e instanceof BundleError &&
        /certificate 1 is not a valid X.509 certificate/.test(e.message) &&
        e.cause instanceof LanyardError &&
        e.cause.code === ErrorCode.MALFORMED_CERTIFICATE,
    );
  });
});

describe('X509Bundle.fromDer and toPem', () => {
  it('builds from DER and writes the same PEM openssl wrote', () => {
    const ca = opensslCa('p256');
    const bundle = X509Bundle.fromDer(td, [ca.der]);
    assert.equal(bundle.toPem(), ca.certPem);
  });

  it('round-trips several authorities through PEM', () => {
    const cas = [opensslCa('p256'), opensslCa('p384'), opensslCa('rsa'), opensslCa('ed25519')];
    const bundle = X509Bundle.fromDer(
      td,
      cas.map((c) => c.der),
    );
    const again = X509Bundle.fromPem(td, bundle.toPem());
    assert.deepEqual(
      again.x509Authorities.map((c) => c.sha256Hex),
      cas.map((c) => c.cert.sha256Hex),
    );
  });

  it('an empty DER list gives a bundle that trusts nothing', () => {
    const bundle = X509Bundle.fromDer(td, []);
    assert.equal(bundle.x509Authorities.length, 0);
    assert.equal(bundle.toPem(), '');
  });

  it('refuses bytes that are not a certificate', () =>
    assertInvalidBundle(
      () => X509Bundle.fromDer(td, [new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])]),
      /certificate 0/,
    ));
});

describe('X509Bundle', () => {
  it('hasAuthority is false for a certificate not in the bundle', () => {
    const bundle = X509Bundle.fromPem(td, opensslCa('p256').certPem);
    assert.ok(!bundle.hasAuthority(opensslCa('p256', 'example.org', 'other').cert));
  });

  it('is a source of itself for its own trust domain only', () => {
    const bundle = X509Bundle.fromPem(td, opensslCa('p256').certPem);
    assert.equal(bundle.getX509BundleForTrustDomain(TrustDomain.parse('example.org')), bundle);
    assert.equal(bundle.getX509BundleForTrustDomain(TrustDomain.parse('other.org')), undefined);
  });

  it('is immutable', () => {
    const bundle = X509Bundle.fromPem(td, opensslCa('p256').certPem);
    assert.ok(Object.isFrozen(bundle));
    assert.ok(Object.isFrozen(bundle.x509Authorities));
  });

  it('holds JWT authorities, sequence and refresh hint', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const bundle = new X509Bundle(td, {
      jwtAuthorities: [['kid-1', publicKey]],
      sequence: 7,
      refreshHint: 300,
    });
    assert.equal(bundle.jwtAuthorities.get('kid-1'), publicKey);
    assert.equal(bundle.sequence, 7);
    assert.equal(bundle.refreshHint, 300);
  });

  it('refuses a private key as a JWT authority', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assertInvalidBundle(
      () => new X509Bundle(td, { jwtAuthorities: [['k', privateKey]] }),
      /must be a public KeyObject/,
    );
  });

  it('refuses an empty or repeated key ID', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assertInvalidBundle(() => new X509Bundle(td, { jwtAuthorities: [['', publicKey]] }), /non-empty key ID/);
    assertInvalidBundle(
      () =>
        new X509Bundle(td, {
          jwtAuthorities: [
            ['k', publicKey],
            ['k', publicKey],
          ],
        }),
      /appears twice/,
    );
  });

  it('refuses a negative, fractional or unsafe sequence or refresh hint', () => {
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 53, Infinity]) {
      assertInvalidBundle(
        () => new X509Bundle(td, { sequence: bad }),
        /sequence must be a non-negative integer/,
      );
      assertInvalidBundle(
        () => new X509Bundle(td, { refreshHint: bad }),
        /refresh hint must be a non-negative integer/,
      );
    }
  });

  it('refuses a trust domain that is not a TrustDomain', () => {
    assertInvalidBundle(() => new X509Bundle('example.org' as unknown as TrustDomain), /TrustDomain\.parse/);
  });
});
