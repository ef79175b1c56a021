import assert from 'node:assert/strict';
import { ErrorCode } from '../../src/errors';
import { VerificationCache } from '../../src/verify/cache';
import { CertificatePathError } from '../../src/verify/path-rules';
import { validateCertPath } from '../../src/verify/path-validation';
import { DAY, HOUR, makeCert, makeIntermediate, makeLeaf, makeRoot, newKey, NOW } from './helpers/certs';
import { expectCode } from './helpers/expect';

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
      expectCode(() => validateCertPath([], [makeRoot(TD).cert], { at }), ErrorCode.CHAIN_EMPTY);
    });

    it('rejects everything when there are no trust anchors', () => {
      const root = makeRoot(TD);
      expectCode(() => validateCertPath([makeLeaf(ID, root).cert], [], { at }), ErrorCode.UNKNOWN_AUTHORITY);
    });

    it('rejects a leaf from another CA with ERR_UNKNOWN_AUTHORITY', () => {
      const root = makeRoot(TD);
      const foreign = makeRoot('other.org');
      expectCode(
        () => validateCertPath([makeLeaf(ID, foreign).cert], [root.cert], { at }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it('rejects a leaf whose issuer is missing from the presented intermediates', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root);
      expectCode(
        () => validateCertPath([makeLeaf(ID, int).cert], [root.cert], { at }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    });

    it('rejects a leaf that names a trusted root but was signed by another key', () => {
      const root = makeRoot(TD);
      const impostor = makeRoot(TD); // same subject DN, key not in the bundle
      expectCode(
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
      expectCode(() => validateCertPath(chain, [root.cert], { at, maxDepth: 3 }), ErrorCode.CHAIN_TOO_LONG);
    });

    it('rejects a chain of more than 32 presented certificates before doing any work', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root);
      const junk = Array.from({ length: 32 }, () => leaf.cert);
      expectCode(() => validateCertPath([leaf.cert, ...junk], [root.cert], { at }), ErrorCode.CHAIN_TOO_LONG);
    });

    it('refuses an invalid options.at or maxDepth', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root);
      expectCode(
        () => validateCertPath([leaf.cert], [root.cert], { at: new Date(NaN) }),
        ErrorCode.INVALID_ARGUMENT,
      );
      expectCode(
        () => validateCertPath([leaf.cert], [root.cert], { at, maxDepth: 1 }),
        ErrorCode.INVALID_ARGUMENT,
      );
    });

    it('reports the most specific failure of a found path, not ERR_UNKNOWN_AUTHORITY', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { keyUsage: ['cRLSign'] });
      const leaf = makeLeaf(ID, int);
      const err = expectCode(
        () => validateCertPath([leaf.cert, int.cert], [root.cert, makeRoot('other.org').cert], { at }),
        ErrorCode.KEY_USAGE_INVALID,
      );
      assert.ok(err instanceof CertificatePathError);
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
        const err = expectCode(() => validateCertPath(chain, roots, { at }), ErrorCode.CERT_EXPIRED);
        assert.equal((err as CertificatePathError).certIndex, index);
      });
      it(`rejects a not-yet-valid ${level} with ERR_CERT_NOT_YET_VALID`, () => {
        const { chain, roots } = chainWith(level, { notBefore: new Date(at.getTime() + 1000) });
        expectCode(() => validateCertPath(chain, roots, { at }), ErrorCode.CERT_NOT_YET_VALID);
      });
      it(`accepts the same ${level} at a time inside its validity`, () => {
        const { chain, roots } = chainWith(level, { notBefore: new Date(at.getTime() + 1000) });
        assert.equal(validateCertPath(chain, roots, { at: new Date(at.getTime() + 2000) }).path.length, 3);
      });
    }
    it('treats notBefore and notAfter as inclusive bounds', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(ID, root, { notBefore: at, notAfter: new Date(at.getTime() + 1000) });
      validateCertPath([leaf.cert], [root.cert], { at });
      validateCertPath([leaf.cert], [root.cert], { at: leaf.cert.notAfter });
      expectCode(
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
      expectCode(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.NOT_A_CA,
      );
    });

    it('rejects an intermediate with cA=false (ERR_NOT_A_CA)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { basicConstraints: { ca: false } });
      expectCode(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.NOT_A_CA,
      );
    });

    it('rejects a root with cA=false (ERR_NOT_A_CA)', () => {
      const root = makeRoot(TD, { basicConstraints: { ca: false } });
      expectCode(() => validateCertPath([makeLeaf(ID, root).cert], [root.cert], { at }), ErrorCode.NOT_A_CA);
    });

    it('rejects a CA whose keyUsage lacks keyCertSign (ERR_KEY_USAGE_INVALID)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { keyUsage: ['cRLSign', 'digitalSignature'] });
      expectCode(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.KEY_USAGE_INVALID,
        /lacks keyCertSign/,
      );
    });

    it('rejects a CA without a keyUsage extension (the X509-SVID standard requires it)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { keyUsage: null });
      expectCode(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.KEY_USAGE_INVALID,
        /without a keyUsage/,
      );
    });

    it('rejects a root whose keyUsage lacks keyCertSign', () => {
      const root = makeRoot(TD, { keyUsage: ['cRLSign'] });
      expectCode(
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
      const err = expectCode(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.PATH_LEN_EXCEEDED,
      );
      assert.equal((err as CertificatePathError).certIndex, 2);
    });

    it('rejects a second intermediate under an intermediate with pathLen 0', () => {
      const root = makeRoot(TD);
      const int1 = makeIntermediate(TD, root, { cn: 'int1', basicConstraints: { ca: true, pathLen: 0 } });
      const int2 = makeIntermediate(TD, int1, { cn: 'int2' });
      expectCode(
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
        expectCode(
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
      expectCode(
        () => validateCertPath([leaf.cert], [root.cert], { at }),
        ErrorCode.UNKNOWN_CRITICAL_EXTENSION,
      );
    });
  });

  describe('keys and signature algorithms', () => {
    it('rejects a certificate signed with ECDSA over SHA-1 (ERR_UNSUPPORTED_ALGORITHM)', () => {
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root, { signatureHash: 'sha1' });
      const err = expectCode(
        () => validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at }),
        ErrorCode.UNSUPPORTED_ALGORITHM,
        /1\.2\.840\.10045\.4\.1/,
      );
      assert.equal((err as CertificatePathError).certIndex, 1);
    });

    it('accepts ECDSA over SHA-384, and does not care how the trust anchor signed itself', () => {
      const root = makeRoot(TD, { signatureHash: 'sha1' });
      const int = makeIntermediate(TD, root, { signatureHash: 'sha384' });
      validateCertPath([makeLeaf(ID, int).cert, int.cert], [root.cert], { at });
    });

    it('rejects a key type Lanyard does not accept, at any level (ERR_UNSUPPORTED_KEY)', () => {
      const root = makeRoot(TD);
      expectCode(
        () => validateCertPath([makeLeaf(ID, root, { key: newKey('P-521') }).cert], [root.cert], { at }),
        ErrorCode.UNSUPPORTED_KEY,
      );
      const weakRoot = makeRoot(TD, { key: newKey('P-521') });
      expectCode(
        () => validateCertPath([makeLeaf(ID, weakRoot).cert], [weakRoot.cert], { at }),
        ErrorCode.UNSUPPORTED_KEY,
      );
      validateCertPath([makeLeaf(ID, root, { key: newKey('P-384') }).cert], [root.cert], { at });
    });
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
      expectCode(
        pathUnder(nc, 'spiffe://evil.org/workload'),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /evil\.org/,
      );
      // No leading dot: exact host only, subdomains are outside.
      expectCode(pathUnder(nc, 'spiffe://sub.example.org/workload'), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
    });

    it('permitted URI with a leading dot: accepts subdomains, rejects the domain itself', () => {
      const nc = { nameConstraints: { permitted: { uri: ['.example.org'] } } };
      pathUnder({ ...nc, uris: ['spiffe://a.example.org'] }, 'spiffe://a.example.org/w')();
      expectCode(
        pathUnder({ ...nc, uris: ['spiffe://a.example.org'] }, ID),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
      );
    });

    it('excluded URI host: rejects a matching ID, accepts another', () => {
      const nc = { nameConstraints: { excluded: { uri: ['evil.org'] } } };
      pathUnder(nc, ID)();
      expectCode(pathUnder(nc, 'spiffe://evil.org/w'), ErrorCode.NAME_CONSTRAINTS_VIOLATED, /excluded/);
    });

    it('permitted DNS: accepts names in the subtree (label boundaries respected), rejects others', () => {
      const nc = { nameConstraints: { permitted: { dns: ['example.org'] } } };
      pathUnder(nc, ID, ['svc.example.org', 'example.org'])();
      expectCode(pathUnder(nc, ID, ['badexample.org']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
      expectCode(pathUnder(nc, ID, ['evil.com']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
    });

    it('excluded DNS: rejects names in the subtree, accepts others', () => {
      const nc = { nameConstraints: { excluded: { dns: ['.internal.example.org'] } } };
      pathUnder(nc, ID, ['api.example.org'])();
      expectCode(pathUnder(nc, ID, ['db.internal.example.org']), ErrorCode.NAME_CONSTRAINTS_VIOLATED);
    });

    it('applies only to the matching name form: a DNS-only constraint does not restrict URI SANs', () => {
      pathUnder({ nameConstraints: { permitted: { dns: ['example.org'] } } }, 'spiffe://elsewhere.org/w')();
    });

    it("applies a root's constraints to the intermediates below it too", () => {
      const root = makeRoot(TD, { nameConstraints: { permitted: { uri: [TD] } } });
      const int = makeIntermediate(TD, root, { uris: ['spiffe://evil.org'] });
      const leaf = makeLeaf(ID, int);
      const err = expectCode(
        () => validateCertPath([leaf.cert, int.cert], [root.cert], { at }),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
      );
      assert.equal((err as CertificatePathError).certIndex, 1);
    });

    it('refuses constraints on a name form it does not process (directoryName)', () => {
      expectCode(
        pathUnder({ nameConstraints: { permitted: { dirName: ['anything'] } } }, ID),
        ErrorCode.NAME_CONSTRAINTS_VIOLATED,
        /name form/,
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
      expectCode(
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
      expectCode(() => validateCertPath(chain, [root.cert], { at: later, cache }), ErrorCode.CERT_EXPIRED);
      assert.ok(cache.stats().signatures.hits >= 1, 'the signature came from the cache, the expiry did not');
    });

    it('does not trust a cached edge to a root that is no longer in the bundle', () => {
      const cache = new VerificationCache();
      const root = makeRoot(TD);
      const int = makeIntermediate(TD, root);
      const int2 = makeIntermediate(TD, int, { cn: 'int2' });
      const chain = [makeLeaf(ID, int2).cert, int2.cert, int.cert];
      validateCertPath(chain, [root.cert], { at, cache });
      expectCode(
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
