import { InvalidArgumentError } from '../errors';
import type { TrustDomain } from '../spiffe';
import type { X509BundleSource } from './source';
import type { X509Bundle } from './x509-bundle';

/**
 * The bundles a verifier trusts, one per trust domain: its own and those it federates with. Lookup is by
 * trust domain only, never by "any bundle whose CA signed this", so a foreign CA can never vouch for an
 * ID outside its own trust domain (SPIFFE Trust Domain and Bundle §6.4).
 */
export class BundleSet implements X509BundleSource {
  private readonly bundles = new Map<string, X509Bundle>();

  /** @throws BundleError (ERR_INVALID_ARGUMENT) when two bundles share a trust domain. */
  constructor(bundles: Iterable<X509Bundle> = []) {
    for (const bundle of bundles) this.add(bundle);
  }

  /**
   * Add the bundle of a trust domain the set does not have yet.
   * @throws BundleError (ERR_INVALID_ARGUMENT) when the set already has one: two configured bundles for one
   * trust domain is a mistake to surface, not a tie to break silently. Use replace() to rotate.
   */
  add(bundle: X509Bundle): void {
    if (this.bundles.has(bundle.trustDomain.name)) {
      throw new InvalidArgumentError(
        `a bundle for trust domain "${bundle.trustDomain.name}" is already in the set`,
      );
    }
    this.bundles.set(bundle.trustDomain.name, bundle);
  }

  /** Put `bundle` in place of its trust domain's bundle (or add it); returns the one it replaced. */
  replace(bundle: X509Bundle): X509Bundle | undefined {
    const previous = this.bundles.get(bundle.trustDomain.name);
    this.bundles.set(bundle.trustDomain.name, bundle);
    return previous;
  }

  /** Remove the bundle of `td`; false when there was none. Its SVIDs stop verifying at once. */
  remove(td: TrustDomain): boolean {
    return this.bundles.delete(td.name);
  }

  get(td: TrustDomain): X509Bundle | undefined {
    return this.bundles.get(td.name);
  }

  has(td: TrustDomain): boolean {
    return this.bundles.has(td.name);
  }

  get size(): number {
    return this.bundles.size;
  }

  trustDomains(): TrustDomain[] {
    return [...this.bundles.values()].map((b) => b.trustDomain);
  }

  [Symbol.iterator](): IterableIterator<X509Bundle> {
    return this.bundles.values();
  }

  getX509BundleForTrustDomain(td: TrustDomain): X509Bundle | undefined {
    return this.bundles.get(td.name);
  }
}
