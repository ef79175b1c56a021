/**
 * An empty SPIFFE bundle (`{"keys":[]}`) is how a trust domain withdraws every X.509 authority. The verifier must
 * then refuse every SVID of that domain, also when its cache still holds chains that verified a moment ago.
 */
import assert from 'node:assert/strict';
import { BundleSet, parseSpiffeBundle, toSpiffeBundle, X509Bundle } from '../../src/bundle';
import { ErrorCode } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import { VerificationCache, verifyX509Svid } from '../../src/verify';
import { ParsedCertificate } from '../../src/x509/certificate';
import { baseContext, createCa, createPki, Issued, issueSvid, TD } from '../support/pki';
import { expectRefusal } from '../support/refusal';

describe('an empty SPIFFE bundle refuses every SVID of its trust domain', () => {
  const td = TrustDomain.parse(TD);
  let ca: Issued;
  let full: X509Bundle;
  /** A leaf signed by the root, one signed through an intermediate, and one carrying an agent context. */
  let chains: ParsedCertificate[][];

  before(() => {
    ca = createCa();
    full = new X509Bundle(td, { x509Authorities: [ca.cert] });
    const intermediate = createPki(TD, { root: ca }).intermediate;
    chains = [
      issueSvid(ca, `spiffe://${TD}/a`, { ttlSeconds: 600 }).chain,
      issueSvid(intermediate, `spiffe://${TD}/b`, { ttlSeconds: 600 }).chain.concat(intermediate.cert),
      issueSvid(ca, `spiffe://${TD}/c`, {
        context: baseContext({ sessionId: 's1', scopes: ['docs:read'] }),
        ttlSeconds: 600,
      }).chain,
    ];
  });

  const EMPTY_JWKS = '{"spiffe_sequence": 7, "keys": []}';

  it('parses {"keys":[]} as a bundle with no X.509 authority', () => {
    const empty = parseSpiffeBundle(td, EMPTY_JWKS);
    assert.equal(empty.x509Authorities.length, 0);
    assert.equal(empty.sequence, 7);
    assert.equal(empty.jwtAuthorities.size, 0);
  });

  it('refuses every SVID against the empty bundle, with and without a cache', () => {
    const set = new BundleSet([parseSpiffeBundle(td, EMPTY_JWKS)]);
    for (const chain of chains) {
      expectRefusal(() => verifyX509Svid(chain, set, { cache: null }), ErrorCode.UNKNOWN_AUTHORITY);
      expectRefusal(
        () => verifyX509Svid(chain, set, { cache: new VerificationCache() }),
        ErrorCode.UNKNOWN_AUTHORITY,
      );
    }
  });

  it('refuses every SVID once a warmed cache sees the domain rotate to the empty bundle', () => {
    const cache = new VerificationCache();
    const set = new BundleSet([parseSpiffeBundle(td, toSpiffeBundle(full))]);
    // Warm: each chain verifies twice, the second time from the cache.
    for (const chain of chains) {
      for (let i = 0; i < 2; i++) assert.equal(verifyX509Svid(chain, set, { cache }).id.trustDomain.name, TD);
    }
    set.replace(parseSpiffeBundle(td, EMPTY_JWKS));
    for (const chain of chains) {
      expectRefusal(() => verifyX509Svid(chain, set, { cache }), ErrorCode.UNKNOWN_AUTHORITY);
    }
    // The default, process-wide cache behaves the same.
    const defaults = new BundleSet([full]);
    for (const chain of chains) verifyX509Svid(chain, defaults);
    defaults.replace(parseSpiffeBundle(td, EMPTY_JWKS));
    for (const chain of chains)
      expectRefusal(() => verifyX509Svid(chain, defaults), ErrorCode.UNKNOWN_AUTHORITY);
    // Control: restoring the authority makes the same chains verify again, so the refusals above came from the
    // empty bundle and not from a cache left broken.
    set.replace(full);
    for (const chain of chains) verifyX509Svid(chain, set, { cache });
  });

  it('a bundle holding only JWT authorities refuses X.509-SVIDs the same way', () => {
    const jwk = toSpiffeBundle(full).keys[0]!;
    const { x5c: _x5c, ...rest } = jwk;
    const jwtOnly = parseSpiffeBundle(td, {
      spiffe_sequence: 8,
      keys: [{ ...rest, use: 'jwt-svid', kid: 'k1' }],
    });
    assert.equal(jwtOnly.x509Authorities.length, 0);
    const set = new BundleSet([jwtOnly]);
    for (const chain of chains)
      expectRefusal(() => verifyX509Svid(chain, set, { cache: null }), ErrorCode.UNKNOWN_AUTHORITY);
  });
});
