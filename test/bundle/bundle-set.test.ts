import assert from 'node:assert/strict';
import { BundleSet, requireX509Bundle, X509Bundle, X509BundleSource } from '../../src/bundle';
import { BundleError, ErrorCode, InvalidArgumentError } from '../../src/errors';
import { GrpcStatus, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { TrustDomain } from '../../src/spiffe';
import { opensslCa } from '../support/pki-openssl';

const example = TrustDomain.parse('example.org');
const partner = TrustDomain.parse('partner.example');

function bundleFor(td: TrustDomain, label = 'a'): X509Bundle {
  return X509Bundle.fromPem(td, opensslCa('p256', td.name, label).certPem);
}

describe('BundleSet', () => {
  it('holds one bundle per trust domain and finds it by value, not by object', () => {
    const own = bundleFor(example);
    const foreign = bundleFor(partner);
    const set = new BundleSet([own, foreign]);
    assert.equal(set.size, 2);
    assert.equal(set.get(TrustDomain.parse('example.org')), own);
    assert.equal(set.getX509BundleForTrustDomain(TrustDomain.parse('spiffe://partner.example')), foreign);
    assert.ok(set.has(example));
    assert.deepEqual(
      set.trustDomains().map((t) => t.name),
      ['example.org', 'partner.example'],
    );
    assert.deepEqual([...set], [own, foreign]);
  });

  it('has nothing for a trust domain it was not given', () => {
    const set = new BundleSet([bundleFor(example)]);
    assert.equal(set.getX509BundleForTrustDomain(partner), undefined);
    assert.ok(!set.has(partner));
  });

  it('add refuses a second bundle for the same trust domain', () => {
    const set = new BundleSet([bundleFor(example)]);
    assert.throws(
      () => set.add(bundleFor(example, 'b')),
      (e: unknown) => e instanceof InvalidArgumentError && e.code === ErrorCode.INVALID_ARGUMENT,
    );
    assert.throws(() => new BundleSet([bundleFor(example), bundleFor(example, 'b')]), InvalidArgumentError);
  });

  it('replace swaps the bundle of a trust domain (rotation) and returns the old one', () => {
    const before = bundleFor(example);
    const after = bundleFor(example, 'b');
    const set = new BundleSet([before]);
    assert.equal(set.replace(after), before);
    assert.equal(set.get(example), after);
    assert.equal(set.size, 1);
    assert.equal(set.replace(bundleFor(partner)), undefined, 'replace also adds');
  });

  it('remove drops a trust domain', () => {
    const set = new BundleSet([bundleFor(example), bundleFor(partner)]);
    assert.ok(set.remove(partner));
    assert.ok(!set.remove(partner));
    assert.equal(set.getX509BundleForTrustDomain(partner), undefined);
    assert.equal(set.size, 1);
  });
});

describe('requireX509Bundle', () => {
  it('returns the bundle a source has', () => {
    const bundle = bundleFor(example);
    const sources: X509BundleSource[] = [bundle, new BundleSet([bundle])];
    for (const source of sources) assert.equal(requireX509Bundle(source, example), bundle);
  });

  it('throws ERR_BUNDLE_NOT_FOUND when the source has none', () => {
    for (const source of [bundleFor(example), new BundleSet()]) {
      assert.throws(
        () => requireX509Bundle(source, partner),
        (e: unknown) =>
          e instanceof BundleError &&
          e.code === ErrorCode.BUNDLE_NOT_FOUND &&
          grpcStatusOf(e) === GrpcStatus.UNAUTHENTICATED &&
          /"partner.example"/.test(e.message),
      );
    }
  });
});
