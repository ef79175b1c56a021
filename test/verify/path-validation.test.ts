import { createPublicKey } from 'node:crypto';
import assert from 'node:assert/strict';
import { ErrorCode, PathValidationError, UnsupportedAlgorithmError } from '../../src/errors';
import { VerificationCache } from '../../src/verify/cache';
import { validateCertPath } from '../../src/verify/path-validation';
import {
  type CertSpec,
  DAY,
  HOUR,
  makeCert,
  makeIntermediate,
  makeLeaf,
  makeRoot,
  newKey,
  NOW,
  Subtrees,
} from '../support/pki';
import { expectRefusal } from '../support/refusal';

const TD = 'example.org';
const ID = 'spiffe://example.org/workload';
const at = NOW;

describe('validateCertPath', () => {
  describe('chain building', () => {
    it('accepts a leaf issued directly by a root', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root);
      const { path } = validateCertPath([leaf.cert], [root.cert], { at });
      assert.deepEqual(
        path.map((c) => c.sha256Hex),
        [leaf.cert.sha256Hex, root.cert.sha256Hex],
      );
    });

    it('accepts intermediates in any order and ignores extra certificates', () => {
      const root = makeRoot(TD);
      const int1 = makeIntermediate(TD, root, { cn: 'int1' });
      const int2 = makeIntermediate(TD, int1, { cn: 'int2' });
      const leaf = makeLeaf(ID, int2);
      const unrelated = makeIntermediate(TD, makeRoot('other.org'), { cn: 'unrelated' });
      const { path } = validateCertPath([leaf.cert, unrelated.cert, int1.cert, int2.cert], [root.cert], {
        at,
      });
      assert.deepEqual(
        path.map((c) => c.sha256Hex),
        [leaf.cert, int2.cert, int1.cert, root.cert].map((c) => c.sha256Hex),
      );
    });

    it('accepts a chain that also presents the root itself', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root);
      const leaf = makeLeaf(ID, int);
      const { path } = validateCertPath([leaf.cert, int.cert, root.cert], [root.cert], { at });
      assert.equal(path.length, 3);
    });

    it('finds the right root among several candidates, including one with the same subject and another key', () => {
      const root = makeRoot(TD);
      const sameName = makeRoot(TD); // same subject DN "example.org root", different key
      const other = makeRoot('other.org');
      const leaf = makeLeaf(ID, root);
      const { path } = validateCertPath([leaf.cert], [other.cert, sameName.cert, root.cert], { at });
      assert.equal(path[1]!.sha256Hex, root.cert.sha256Hex);
    });

    it('treats key identifiers as hints only: a wrong AKI does not hide the real issuer, the signature decides', () => {
      const root = makeRoot(TD);
      const sameName = makeRoot(TD);
      const leaf = makeLeaf(ID, root, { authorityKeyId: sameName.cert.subjectKeyId! });
      const { path } = validateCertPath([leaf.cert], [sameName.cert, root.cert], { at });
      assert.equal(path[1]!.sha256Hex, root.cert.sha256Hex);
    });

    it('finds the valid intermediate when an expired one with the same subject is presented too', () => {
      const root = makeRoot(TD);
      const key = newKey();
      const old = makeIntermediate(TD, root, { key, notAfter: new Date(at.getTime() - HOUR) });
      const current = makeIntermediate(TD, root, { key });
      const leaf = makeLeaf(ID, current);
      const { path } = validateCertPath([leaf.cert, old.cert, current.cert], [root.cert], { at });
      assert.equal(path[1]!.sha256Hex, current.cert.sha256Hex);
    });

    it('accepts a trust anchor that is not self-signed (its signature is never checked)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root);
      const leaf = makeLeaf(ID, int);
      const { path } = validateCertPath([leaf.cert], [int.cert], { at });
      assert.equal(path.length, 2);
    });

    it('rejects an empty chain', () => {
      expectRefusal(() => validateCertPath([], [makeRoot(TD).cert], { at }), ErrorCode.CHAIN_EMPTY);
    });

    it('rejects everything when there are no trust anchors', () => {
      const root = makeRoot(TD);
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, root).cert], [], { at }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it('rejects a leaf from another CA with ERR_UNKNOWN_AUTHORITY', () => {
      const root = makeRoot(TD);
      const foreign = makeRoot('other.org');
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, foreign).cert], [root.cert], { at }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it('rejects a leaf whose issuer is missing from the presented intermediates', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root);
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, int).cert], [root.cert], { at }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it('rejects a leaf that names a trusted root but was signed by another key', () => {
      const root = makeRoot(TD);
      const impostor = makeRoot(TD); // same subject DN, key not in the bundle
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, impostor, { authorityKeyId: null }).cert], [root.cert], { at }),
        ErrorCode.SIGNATURE_INVALID,
      );
    });

    it('rejects a path longer than maxDepth, and accepts it at the bound', () => {
      const root = makeRoot(TD);
      const int1 = makeIntermediate(TD, root, { cn: 'int1' });
      const int2 = makeIntermediate(TD, int1, { cn: 'int2' });
      const leaf = makeLeaf(ID, int2);
      const chain = [leaf.cert, int2.cert, int1.cert];
      assert.equal(validateCertPath(chain, [root.cert], { at, maxDepth: 4 }).path.length, 4);
      expectRefusal(
        () => validateCertPath(chain, [root.cert], { at, maxDepth: 3 }),
        ErrorCode.CHAIN_TOO_LONG,
      );
    });

    it('rejects a chain of more than 32 presented certificates before doing any work', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root);
      const junk = Array.from({ length: 32 }, () => leaf.cert);
      expectRefusal(
        () => validateCertPath([leaf.cert, ...junk], [root.cert], { at }),
        ErrorCode.CHAIN_TOO_LONG,
      );
    });

    it('refuses an invalid options.at or maxDepth', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root);
      expectRefusal(
        () => validateCertPath([leaf.cert], [root.cert], { at: new Date(NaN) }),
        ErrorCode.INVALID_ARGUMENT,
      );
      expectRefusal(
        () => validateCertPath([leaf.cert], [root.cert], { at, maxDepth: 1 }),
        ErrorCode.INVALID_ARGUMENT,
      );
    });

    it('reports the most specific failure of a found path, not ERR_UNKNOWN_AUTHORITY', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { keyUsage: ['cRLSign'] });
      const leaf = makeLeaf(ID, int);
      const err = expectRefusal(
        () => validateCertPath([leaf.cert, int.cert], [root.cert, makeRoot('other.org').cert], { at }),
        ErrorCode.KEY_USAGE_INVALID,
      );
      assert.ok(err instanceof PathValidationError);
      assert.equal(err.certIndex, 1);
      assert.equal(err.certSha256Hex, int.cert.sha256Hex);
    });
  });

  describe('validity at options.at, for every certificate', () => {
    const cases: { level: 'leaf' | 'intermediate' | 'root'; index: number }[] = [
      { level: 'leaf', index: 0 },
      { level: 'intermediate', index: 1 },
      { level: 'root', index: 2 },
    ];
    function chainWith(level: string, spec: { notBefore?: Date; notAfter?: Date }) {
      const root = makeRoot(TD, level === 'root' ? spec : {});
      const int = makeIntermediate(TD, root, level === 'intermediate' ? spec : {});
      const leaf = makeLeaf(ID, int, level === 'leaf' ? spec : {});
      return { chain: [leaf.cert, int.cert], roots: [root.cert] };
    }
    for (const { level, index } of cases) {
      it(`rejects an expired ${level} with ERR_CERT_EXPIRED`, () => {
        const { chain, roots } = chainWith(level, { notAfter: new Date(at.getTime() - 1000) });
        const err = expectRefusal(() => validateCertPath(chain, roots, { at }), ErrorCode.CERT_EXPIRED);
        assert.equal((err as PathValidationError).certIndex, index);
      });
      it(`rejects a not-yet-valid ${level} with ERR_CERT_NOT_YET_VALID`, () => {
        const { chain, roots } = chainWith(level, { notBefore: new Date(at.getTime() + 1000) });
        expectRefusal(() => validateCertPath(chain, roots, { at }), ErrorCode.CERT_NOT_YET_VALID);
      });
      it(`accepts the same ${level} at a time inside its validity`, () => {
        const { chain, roots } = chainWith(level, { notBefore: new Date(at.getTime() + 1000) });
        assert.equal(validateCertPath(chain, roots, { at: new Date(at.getTime() + 2000) }).path.length, 3);
      });
    }
    it('compares at one-second granularity: valid through the whole second of notAfter, not before notBefore', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root, { notBefore: at, notAfter: new Date(at.getTime() + 1000) });
      validateCertPath([leaf.cert], [root.cert], { at: new Date(leaf.cert.notAfter.getTime() + 999) });
      expectRefusal(
        () =>
          validateCertPath([leaf.cert], [root.cert], { at: new Date(leaf.cert.notAfter.getTime() + 1000) }),
        ErrorCode.CERT_EXPIRED,
      );
      expectRefusal(
        () => validateCertPath([leaf.cert], [root.cert], { at: new Date(at.getTime() - 1) }),
        ErrorCode.CERT_NOT_YET_VALID,
      );
    });

    it('treats notBefore and notAfter as inclusive bounds', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root, { notBefore: at, notAfter: new Date(at.getTime() + 1000) });
      validateCertPath([leaf.cert], [root.cert], { at });
      validateCertPath([leaf.cert], [root.cert], { at: leaf.cert.notAfter });
      expectRefusal(
        () =>
          validateCertPath([leaf.cert], [root.cert], { at: new Date(leaf.cert.notAfter.getTime() + 1000) }),
        ErrorCode.CERT_EXPIRED,
      );
    });
  });

  describe('CA rules', () => {
    it('rejects an intermediate without basicConstraints (ERR_NOT_A_CA)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { basicConstraints: null });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.NOT_A_CA,
      );
    });

    it('rejects an intermediate with cA=false (ERR_NOT_A_CA)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { basicConstraints: { ca: false } });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.NOT_A_CA,
      );
    });

    it('rejects a root with cA=false (ERR_NOT_A_CA)', () => {
      const root = makeRoot(TD, { basicConstraints: { ca: false } });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, root).cert], [root.cert], { at }),
        ErrorCode.NOT_A_CA,
      );
    });

    it('rejects a CA whose keyUsage lacks keyCertSign (ERR_KEY_USAGE_INVALID)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { keyUsage: ['cRLSign', 'digitalSignature'] });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.KEY_USAGE_INVALID,
        /lacks keyCertSign/,
      );
    });

    it('rejects a CA without a keyUsage extension (the X509-SVID standard requires it)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { keyUsage: null });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.KEY_USAGE_INVALID,
        /without a keyUsage/,
      );
    });

    it('rejects a root whose keyUsage lacks keyCertSign', () => {
      const root = makeRoot(TD, { keyUsage: ['cRLSign'] });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, root).cert], [root.cert], { at }),
        ErrorCode.KEY_USAGE_INVALID,
      );
    });
  });

  describe('pathLenConstraint', () => {
    it('accepts one intermediate under a root with pathLen 1, and none under pathLen 0', () => {
      const root = makeRoot(TD, { basicConstraints: { ca: true, pathLen: 1 } });
      const int = makeIntermediate(TD, root);
      validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at });
      const root0 = makeRoot(TD, { basicConstraints: { ca: true, pathLen: 0 } });
      validateCertPath([makeLeaf(ID, root0).cert], [root0.cert], { at });
    });

    it('rejects an intermediate under a root with pathLen 0 (ERR_PATH_LEN_EXCEEDED)', () => {
      const root = makeRoot(TD, { basicConstraints: { ca: true, pathLen: 0 } });
      const int = makeIntermediate(TD, root);
      const err = expectRefusal(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.PATH_LEN_EXCEEDED,
      );
      assert.equal((err as PathValidationError).certIndex, 2);
    });

    it('rejects a second intermediate under an intermediate with pathLen 0', () => {
      const root = makeRoot(TD);
      const int1 = makeIntermediate(TD, root, { cn: 'int1', basicConstraints: { ca: true, pathLen: 0 } });
      const int2 = makeIntermediate(TD, int1, { cn: 'int2' });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, int2).cert, int2.cert, int1.cert], [root.cert], { at }),
        ErrorCode.PATH_LEN_EXCEEDED,
      );
    });

    it('does not count a self-issued intermediate (key rollover) against pathLen (RFC 5280 §6.1.4 (l))', () => {
      const root = makeRoot(TD, { basicConstraints: { ca: true, pathLen: 0 } });
      // Same subject as the root, new key, signed by the root: self-issued, not self-signed.
      const rollover = makeIntermediate(TD, root, { cn: `${TD} root` });
      assert.ok(rollover.cert.selfIssued);
      const leaf = makeLeaf(ID, rollover);
      const { path } = validateCertPath([leaf.cert, rollover.cert], [root.cert], { at });
      assert.equal(path.length, 3);
    });
  });

  describe('critical extensions', () => {
    const UNKNOWN_OID = '1.3.6.1.4.1.99999.1';
    const value = new Uint8Array([0x05, 0x00]); // DER NULL
    for (const level of ['leaf', 'intermediate', 'root'] as const) {
      it(`rejects an unknown critical extension on the ${level}`, () => {
        const extra = [{ oid: UNKNOWN_OID, critical: true, value }];
        const root = makeRoot(TD, level === 'root' ? { extra } : {});
        const int = makeIntermediate(TD, root, level === 'intermediate' ? { extra } : {});
        const leaf = makeLeaf(ID, int, level === 'leaf' ? { extra } : {});
        expectRefusal(
          () => validateCertPath([leaf.cert, int.cert], [root.cert], { at }),
          ErrorCode.UNKNOWN_CRITICAL_EXTENSION,
          new RegExp(UNKNOWN_OID.replace(/\./g, '\\.')),
        );
      });
    }

    it('accepts the same extension when it is not critical', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root, { extra: [{ oid: UNKNOWN_OID, critical: false, value }] });
      validateCertPath([leaf.cert], [root.cert], { at });
    });

    it('rejects a critical certificatePolicies extension (policy processing is not implemented)', () => {
      const root = makeRoot(TD);
      // certificatePolicies with one policy: anyPolicy (2.5.29.32.0)
      const anyPolicy = new Uint8Array([0x30, 0x08, 0x30, 0x06, 0x06, 0x04, 0x55, 0x1d, 0x20, 0x00]);
      const leaf = makeLeaf(ID, root, { extra: [{ oid: '2.5.29.32', critical: true, value: anyPolicy }] });
      expectRefusal(
        () => validateCertPath([leaf.cert], [root.cert], { at }),
        ErrorCode.UNKNOWN_CRITICAL_EXTENSION,
      );
    });
  });

  describe('keys and signature algorithms', () => {
    it('rejects a certificate signed with ECDSA over SHA-1 (ERR_UNSUPPORTED_ALGORITHM)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { signatureHash: 'sha1' });
      const err = expectRefusal(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.UNSUPPORTED_ALGORITHM,
        /1\.2\.840\.10045\.4\.1/,
      );
      assert.ok(err instanceof UnsupportedAlgorithmError);
      assert.equal(err.certIndex, 1);
    });

    it('accepts ECDSA over SHA-384, and does not care how the trust anchor signed itself', () => {
      const root = makeRoot(TD, { signatureHash: 'sha1' });
      const int = makeIntermediate(TD, root, { signatureHash: 'sha384' });
      validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at });
    });

    it('rejects a key type Lanyard does not accept, at any level (ERR_UNSUPPORTED_KEY)', () => {
      const root = makeRoot(TD);
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, root, { key: newKey('ec-p521') }).cert], [root.cert], { at }),
        ErrorCode.UNSUPPORTED_KEY,
      );
      const weakRoot = makeRoot(TD, { key: newKey('ec-p521') });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, weakRoot).cert], [weakRoot.cert], { at }),
        ErrorCode.UNSUPPORTED_KEY,
      );
      validateCertPath([makeLeaf(ID, root, { key: newKey('ec-p384') }).cert], [root.cert], { at });
    });

    // A leaf's EC key is checked on its curve without importing it (ParsedCertificate.describeKey): the shortcut
    // must refuse what the import refused.
    for (const [curve, alg] of [
      ['P-256', 'ec-p256'],
      ['P-384', 'ec-p384'],
    ] as const) {
      it(`rejects a leaf whose ${curve} point is off its curve (ERR_UNSUPPORTED_KEY), with or without a cache`, () => {
        const root = makeRoot(TD);
        const spki = Buffer.from(newKey(alg).publicKey.export({ type: 'spki', format: 'der' }));
        spki[spki.length - 1]! ^= 0x01; // the last byte of y: the point leaves the curve, the DER stays the same
        assert.throws(() => createPublicKey({ key: spki, format: 'der', type: 'spki' }));
        const leaf = makeLeaf(ID, root, { spkiDer: spki });
        for (const cache of [undefined, new VerificationCache()]) {
          expectRefusal(
            () => validateCertPath([leaf.cert], [root.cert], { at, ...(cache ? { cache } : {}) }),
            ErrorCode.UNSUPPORTED_KEY,
            /not on/,
          );
        }
      });

      it(`refuses a ${curve} point off its curve right after the same key's valid point was accepted`, () => {
        // describeKey remembers the last point found on each curve: only those exact bytes skip the equation.
        const root = makeRoot(TD);
        const key = newKey(alg);
        const good = Buffer.from(key.publicKey.export({ type: 'spki', format: 'der' }));
        const bad = Buffer.from(good);
        bad[bad.length - 1]! ^= 0x01;
        for (let round = 0; round < 2; round++) {
          const accepted = makeLeaf(ID, root, { spkiDer: good });
          validateCertPath([accepted.cert], [root.cert], { at });
          assert.deepEqual(accepted.cert.describeKey(), { kind: 'ec', curve });
          expectRefusal(
            () => validateCertPath([makeLeaf(ID, root, { spkiDer: bad }).cert], [root.cert], { at }),
            ErrorCode.UNSUPPORTED_KEY,
            /not on/,
          );
        }
      });
    }
  });

  describe('name constraints', () => {
    function pathUnder(
      constraints: Parameters<typeof makeIntermediate>[2],
      leafId: string,
      dns: string[] = [],
    ): () => unknown {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, constraints);
      const leaf = makeLeaf(leafId, int, { dns });
      return () => validateCertPath([leaf.cert, int.cert], [root.cert], { at });
    }

    it('permitted URI host: accepts an ID in the domain, rejects one outside', () => {
      const nc = { nameConstraints: { permitted: { uri: [TD] } } };
      pathUnder(nc, ID)();
      expectRefusal(
        pathUnder(nc, 'spiffe://evil.org/workload'),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /evil\.org/,
      );
      // No leading dot: exact host only, subdomains are outside.
      expectRefusal(pathUnder(nc, 'spiffe://sub.example.org/workload'), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
    });

    it('permitted URI with a leading dot: accepts subdomains, rejects the domain itself', () => {
      const nc = { nameConstraints: { permitted: { uri: ['.example.org'] } } };
      pathUnder({ ...nc, uris: ['spiffe://a.example.org'] }, 'spiffe://a.example.org/w')();
      expectRefusal(
        pathUnder({ ...nc, uris: ['spiffe://a.example.org'] }, ID),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
      );
    });

    it('excluded URI host: rejects a matching ID, accepts another', () => {
      const nc = { nameConstraints: { excluded: { uri: ['evil.org'] } } };
      pathUnder(nc, ID)();
      expectRefusal(pathUnder(nc, 'spiffe://evil.org/w'), ErrorCode.NAME_CONSTRAINTS_VIOLATED, /excluded/);
    });

    it('permitted DNS: accepts names in the subtree (label boundaries respected), rejects others', () => {
      const nc = { nameConstraints: { permitted: { dns: ['example.org'] } } };
      pathUnder(nc, ID, ['svc.example.org', 'example.org'])();
      expectRefusal(pathUnder(nc, ID, ['badexample.org']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
      expectRefusal(pathUnder(nc, ID, ['evil.com']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
    });

    it('excluded DNS: rejects names in the subtree, accepts others', () => {
      const nc = { nameConstraints: { excluded: { dns: ['internal.example.org'] } } };
      pathUnder(nc, ID, ['api.example.org'])();
      expectRefusal(pathUnder(nc, ID, ['db.internal.example.org']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
      expectRefusal(pathUnder(nc, ID, ['internal.example.org']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
    });

    it('refuses a DNS constraint with a leading dot or a wildcard: RFC 5280 gives them no meaning', () => {
      // ".example.org" is a URI/email form; as a dNSName some read it as "subdomains only", others as
      // "example.org and below". Guessing could widen a permitted set or narrow an excluded one.
      for (const base of ['.internal.example.org', '*.example.org']) {
        expectRefusal(
          pathUnder({ nameConstraints: { excluded: { dns: [base] } } }, ID, ['api.example.org']),
          ErrorCode.CERT_PROFILE_INVALID,
          /malformed name constraint/,
        );
        expectRefusal(
          pathUnder({ nameConstraints: { permitted: { dns: [base] } } }, ID, ['a.example.org']),
          ErrorCode.CERT_PROFILE_INVALID,
          /malformed name constraint/,
        );
      }
    });

    it('refuses a wildcard DNS SAN that could stand for an excluded name (CVE-2025-61727)', () => {
      const nc = {
        nameConstraints: { permitted: { dns: ['example.com'] }, excluded: { dns: ['bar.example.com'] } },
      };
      expectRefusal(
        pathUnder(nc, ID, ['*.example.com']),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /"\*\.example\.com" is in the excluded subtree "bar\.example\.com"/,
      );
      pathUnder(nc, ID, ['*.foo.example.com', 'foo.example.com'])();
    });

    it('refuses a wildcard DNS SAN broader than the permitted subtree', () => {
      const nc = { nameConstraints: { permitted: { dns: ['foo.example.com'] } } };
      expectRefusal(pathUnder(nc, ID, ['*.example.com']), ErrorCode.NAME_CONSTRAINTS_VIOLATED, /permitted/);
      pathUnder(nc, ID, ['*.foo.example.com'])();
    });

    it('IP constraints (IPv4 and IPv6 ranges): permitted and excluded, both families', () => {
      const root = makeRoot(TD);
      const under = (nc: Subtrees, excluded: boolean, ips: string[]) => {
        const int = makeIntermediate(TD, root, {
          nameConstraints: excluded ? { excluded: nc } : { permitted: nc },
        });
        const leaf = makeLeaf(ID, int, { ips });
        return () => validateCertPath([leaf.cert, int.cert], [root.cert], { at });
      };
      const ranges = { ip: ['192.0.2.0/24', '2001:db8::/32'] };
      under(ranges, false, ['192.0.2.7', '2001:db8::7'])();
      expectRefusal(under(ranges, false, ['192.0.3.7']), ErrorCode.NAME_CONSTRAINTS_VIOLATED, /192\.0\.3\.7/);
      expectRefusal(
        under(ranges, false, ['2001:db9::7']),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /2001:db9::7/,
      );
      under(ranges, true, ['198.51.100.1', '2001:db9::1'])();
      expectRefusal(under(ranges, true, ['192.0.2.200']), ErrorCode.NAME_CONSTRAINTS_VIOLATED, /excluded/);
      expectRefusal(
        under(ranges, true, ['2001:db8:ffff::1']),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /excluded/,
      );
      // ::ffff:192.0.2.1, the IPv4-mapped IPv6 form of an excluded IPv4 address, is the same address.
      expectRefusal(
        under(ranges, true, ['::ffff:c000:201']),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /excluded/,
      );
      // An IPv6 address is not inside IPv4-only permitted ranges.
      expectRefusal(
        under({ ip: ['0.0.0.0/0'] }, false, ['2001:db8::1']),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /permitted/,
      );
    });

    it('email constraints: mailbox, host and ".domain" forms, on SANs', () => {
      const root = makeRoot(TD);
      const under = (email: string[], emails: string[], excluded = false) => {
        const int = makeIntermediate(TD, root, {
          nameConstraints: excluded ? { excluded: { email } } : { permitted: { email } },
        });
        const leaf = makeLeaf(ID, int, { emails });
        return () => validateCertPath([leaf.cert, int.cert], [root.cert], { at });
      };
      under(['ops@example.org'], ['ops@EXAMPLE.org'])();
      expectRefusal(under(['ops@example.org'], ['dev@example.org']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
      under(['example.org'], ['anyone@example.org'])();
      expectRefusal(under(['example.org'], ['a@mail.example.org']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
      under(['.example.org'], ['a@mail.example.org'])();
      expectRefusal(under(['.example.org'], ['a@example.org']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
      expectRefusal(
        under(['example.org'], ['a@example.org'], true),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /excluded/,
      );
      under(['example.org'], ['a@example.com'], true)();
    });

    it('directoryName constraints apply to the subject of every certificate below the CA', () => {
      const root = makeRoot(TD);
      const under = (dirName: string[], cn: string, excluded = false) => {
        const int = makeIntermediate(TD, root, {
          nameConstraints: excluded ? { excluded: { dirName } } : { permitted: { dirName } },
        });
        const leaf = makeLeaf(ID, int, { cn });
        return () => validateCertPath([leaf.cert, int.cert], [root.cert], { at });
      };
      under(['workload'], 'workload')();
      // Compared as RFC 5280 §7.1 asks: case and insignificant spaces do not make another name.
      under(['workload'], '  WORKLOAD ')();
      expectRefusal(
        under(['workload'], 'other'),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /directory name "CN=other"/,
      );
      expectRefusal(under(['workload'], 'Workload', true), ErrorCode.NAME_CONSTRAINTS_VIOLATED, /excluded/);
      under(['workload'], 'other', true)();
    });

    it('otherName constraints: no effect without an otherName SAN, fail closed with one', () => {
      const nc = {
        nameConstraints: { permitted: { dns: ['example.org'] }, excluded: { otherName: ['1.2.3.4'] } },
      };
      pathUnder(nc, ID, ['svc.example.org'])();
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, nc);
      const leaf = makeLeaf(ID, int, { dns: ['svc.example.org'], otherNames: ['1.2.3.4'] });
      expectRefusal(
        () => validateCertPath([leaf.cert, int.cert], [root.cert], { at }),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /otherName 1\.2\.3\.4 cannot be checked/,
      );
    });

    it('constraints of one form do not restrict names of another form', () => {
      pathUnder({ nameConstraints: { permitted: { ip: ['10.0.0.0/8'], email: ['example.org'] } } }, ID, [
        'svc.example.org',
      ])();
      pathUnder({ nameConstraints: { excluded: { ip: ['0.0.0.0/0'], dirName: ['x'] } } }, ID)();
    });

    it('refuses name constraints in a certificate that is not a CA (RFC 5280 §4.2.1.10)', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root, { nameConstraints: { permitted: { uri: [TD] } } });
      expectRefusal(
        () => validateCertPath([leaf.cert], [root.cert], { at }),
        ErrorCode.CERT_PROFILE_INVALID,
        /name constraints but is not a CA/,
      );
    });

    it('bounds the work: thousands of subtrees against thousands of names is refused', () => {
      const dns = Array.from({ length: 300 }, (_, i) => `n${i}.example.org`);
      const excluded = Array.from({ length: 300 }, (_, i) => `x${i}.example.org`);
      expectRefusal(
        pathUnder({ nameConstraints: { excluded: { dns: excluded } } }, ID, dns),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /more than 65536 comparisons/,
      );
      pathUnder({ nameConstraints: { excluded: { dns: excluded.slice(0, 100) } } }, ID, dns)();
    });

    it('applies only to the matching name form: a DNS-only constraint does not restrict URI SANs', () => {
      pathUnder({ nameConstraints: { permitted: { dns: ['example.org'] } } }, 'spiffe://elsewhere.org/w')();
    });

    it("applies a root's constraints to the intermediates below it too", () => {
      const root = makeRoot(TD, { nameConstraints: { permitted: { uri: [TD] } } });
      const int = makeIntermediate(TD, root, { uris: ['spiffe://evil.org'] });
      const leaf = makeLeaf(ID, int);
      const err = expectRefusal(
        () => validateCertPath([leaf.cert, int.cert], [root.cert], { at }),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
      );
      assert.equal((err as PathValidationError).certIndex, 1);
    });
  });

  describe('RFC 5280 profile rules the path relies on', () => {
    /** root -> intermediate -> leaf, one of them built with `spec`. */
    function chainWith(level: 'root' | 'intermediate' | 'leaf', spec: Partial<CertSpec>) {
      const root = makeRoot(TD, level === 'root' ? spec : {});
      const int = makeIntermediate(TD, root, level === 'intermediate' ? spec : {});
      const leaf = makeLeaf(ID, int, level === 'leaf' ? spec : {});
      return () => validateCertPath([leaf.cert, int.cert], [root.cert], { at });
    }

    for (const level of ['root', 'intermediate', 'leaf'] as const) {
      it(`refuses critical key identifier extensions on the ${level} (§4.2.1.1, §4.2.1.2)`, () => {
        expectRefusal(
          chainWith(level, { keyIdsCritical: true }),
          ErrorCode.CERT_PROFILE_INVALID,
          /key identifier critical/,
        );
      });
    }

    for (const level of ['intermediate', 'leaf'] as const) {
      it(`refuses an ${level} without an authority key identifier when its issuer has an SKI (§4.2.1.1)`, () => {
        const err = expectRefusal(
          chainWith(level, { authorityKeyId: null }),
          ErrorCode.CERT_PROFILE_INVALID,
          /no authority key identifier/,
        );
        assert.equal((err as PathValidationError).certIndex, level === 'leaf' ? 0 : 1);
      });
    }

    it('accepts a self-signed root without an authority key identifier', () => {
      chainWith('root', { authorityKeyId: null })();
    });

    for (const level of ['root', 'intermediate'] as const) {
      it(`refuses a ${level} CA without a subject key identifier (§4.2.1.2)`, () => {
        const root = makeRoot(TD, level === 'root' ? { subjectKeyId: false } : {});
        const int = makeIntermediate(TD, root, level === 'intermediate' ? { subjectKeyId: false } : {});
        // The leaf names the key by the identifier the CA would have had (the signature decides anyway).
        const leaf = makeLeaf(ID, int, { authorityKeyId: Uint8Array.of(1, 2, 3) });
        expectRefusal(
          () => validateCertPath([leaf.cert, int.cert], [root.cert], { at }),
          ErrorCode.CERT_PROFILE_INVALID,
          /without a subject key identifier/,
        );
      });

      it(`refuses a ${level} CA whose basicConstraints is not critical (§4.2.1.9)`, () => {
        expectRefusal(
          chainWith(level, { basicConstraints: { ca: true, critical: false } }),
          ErrorCode.CERT_PROFILE_INVALID,
          /basicConstraints is not critical/,
        );
      });

      it(`refuses a ${level} CA with an empty subject (§4.1.2.6), which would chain to any empty issuer`, () => {
        expectRefusal(
          chainWith(level, { emptySubject: true, sanCritical: true }),
          ErrorCode.CERT_PROFILE_INVALID,
          /empty subject/,
        );
      });
    }

    it('accepts a leaf with a non-critical basicConstraints (the rule is for CA certificates)', () => {
      chainWith('leaf', { basicConstraints: { ca: false, critical: false } })();
    });

    it('refuses keyCertSign on a certificate that is not a CA (§4.2.1.3, §4.2.1.9)', () => {
      const root = makeRoot(TD);
      for (const basicConstraints of [{ ca: false }, null]) {
        const leaf = makeLeaf(ID, root, { basicConstraints, keyUsage: ['digitalSignature', 'keyCertSign'] });
        expectRefusal(
          () => validateCertPath([leaf.cert], [root.cert], { at }),
          ErrorCode.KEY_USAGE_INVALID,
          /keyCertSign but is not a CA/,
        );
      }
    });

    it('refuses an empty subject unless the subjectAltName is critical (§4.1.2.6, §4.2.1.6)', () => {
      expectRefusal(
        chainWith('leaf', { emptySubject: true }),
        ErrorCode.CERT_PROFILE_INVALID,
        /empty subject without a critical subjectAltName/,
      );
      chainWith('leaf', { emptySubject: true, sanCritical: true })();
    });

    it('refuses malformed DNS name SANs: underscore, leading or trailing dot, partial wildcard', () => {
      for (const dns of ['foo_bar.example.org', '.example.org', 'example.org.', 'f*.example.org', '*.org']) {
        expectRefusal(
          chainWith('leaf', { dns: [dns] }),
          ErrorCode.CERT_PROFILE_INVALID,
          /malformed DNS name SAN/,
        );
      }
      chainWith('leaf', { dns: ['*.svc.example.org', 'Api-1.example.org'] })();
    });

    it('refuses malformed email and IP address SANs', () => {
      expectRefusal(
        chainWith('leaf', { emails: ['a@b@example.org'] }),
        ErrorCode.CERT_PROFILE_INVALID,
        /malformed email address SAN/,
      );
      // A constraint-shaped (address and mask) value where an address belongs.
      expectRefusal(
        chainWith('leaf', { ips: ['192.0.2.0/24'] }),
        ErrorCode.CERT_PROFILE_INVALID,
        /malformed IP address SAN/,
      );
      chainWith('leaf', { emails: ['ops@example.org'], ips: ['192.0.2.1', '2001:db8::1'] })();
    });

    it('does not hold a trust anchor to the name rules: it is a name and a key', () => {
      chainWith('root', { dns: ['under_score.example.org'] })();
    });
  });

  describe('depth bound and self-issued certificates', () => {
    it('does not count a self-issued intermediate (key rollover) toward maxDepth (RFC 5280 §6.1.4 (l))', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { cn: 'int' });
      const rollover = makeIntermediate(TD, int, { cn: 'int' });
      assert.ok(rollover.cert.selfIssued);
      const leaf = makeLeaf(ID, rollover);
      const { path } = validateCertPath([leaf.cert, rollover.cert, int.cert], [root.cert], {
        at,
        maxDepth: 3,
      });
      assert.equal(path.length, 4);
      // The same depth with a second intermediate that is not self-issued is over the bound.
      const int2 = makeIntermediate(TD, int, { cn: 'int2' });
      expectRefusal(
        () =>
          validateCertPath([makeLeaf(ID, int2).cert, int2.cert, int.cert], [root.cert], { at, maxDepth: 3 }),
        ErrorCode.CHAIN_TOO_LONG,
      );
    });
  });

  describe('cache', () => {
    it('serves CA signatures of a repeated chain from the cache, never the leaf signature', () => {
      const cache = new VerificationCache();
      const root = makeRoot(TD);
      const int1 = makeIntermediate(TD, root, { cn: 'int1' });
      const int2 = makeIntermediate(TD, int1, { cn: 'int2' });
      const chain = [makeLeaf(ID, int2).cert, int2.cert, int1.cert];
      validateCertPath(chain, [root.cert], { at, cache });
      assert.deepEqual(cache.stats().signatures, { hits: 0, misses: 2, size: 2, evictions: 0 });
      validateCertPath(chain, [root.cert], { at, cache });
      assert.equal(cache.stats().signatures.hits, 2);
      // A new leaf from the same CA reuses the CA signatures as well.
      validateCertPath(
        [makeLeaf('spiffe://example.org/other', int2).cert, int2.cert, int1.cert],
        [root.cert],
        {
          at,
          cache,
        },
      );
      assert.equal(cache.stats().signatures.hits, 4);
      assert.equal(cache.stats().signatures.size, 2);
    });

    it('stores nothing from a chain that fails', () => {
      const cache = new VerificationCache();
      const root = makeRoot(TD, { notAfter: new Date(at.getTime() - 1000) });
      const int = makeIntermediate(TD, root);
      const int2 = makeIntermediate(TD, int, { cn: 'int2' });
      expectRefusal(
        () => validateCertPath([makeLeaf(ID, int2).cert, int2.cert, int.cert], [root.cert], { at, cache }),
        ErrorCode.CERT_EXPIRED,
      );
      assert.equal(cache.stats().signatures.size, 0);
    });

    it('never serves an expired chain from the cache: validity is checked on every call', () => {
      const cache = new VerificationCache();
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { notAfter: new Date(at.getTime() + DAY) });
      const int2 = makeIntermediate(TD, int, { cn: 'int2' });
      const chain = [
        makeLeaf(ID, int2, { notAfter: new Date(at.getTime() + 10 * DAY) }).cert,
        int2.cert,
        int.cert,
      ];
      validateCertPath(chain, [root.cert], { at, cache });
      const later = new Date(at.getTime() + 2 * DAY);
      expectRefusal(() => validateCertPath(chain, [root.cert], { at: later, cache }), ErrorCode.CERT_EXPIRED);
      assert.ok(cache.stats().signatures.hits >= 1, 'the signature came from the cache, the expiry did not');
    });

    it('does not trust a cached edge to a root that is no longer in the bundle', () => {
      const cache = new VerificationCache();
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root);
      const int2 = makeIntermediate(TD, int, { cn: 'int2' });
      const chain = [makeLeaf(ID, int2).cert, int2.cert, int.cert];
      validateCertPath(chain, [root.cert], { at, cache });
      expectRefusal(
        () => validateCertPath(chain, [makeRoot('other.org').cert], { at, cache }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it('evicts the least recently used entry when full', () => {
      const cache = new VerificationCache({ maxEntries: 1 });
      const root = makeRoot(TD);
      for (const cn of ['a', 'b']) {
        const int = makeIntermediate(TD, root, { cn });
        validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at, cache });
      }
      assert.equal(cache.stats().signatures.size, 1);
      assert.equal(cache.stats().signatures.evictions, 1);
    });
  });
});

describe('makeCert helper sanity', () => {
  it('builds a self-signed certificate', () => {
    const c = makeCert({ cn: 'x' });
    assert.ok(c.cert.isSignedBy(c.cert));
  });
});
