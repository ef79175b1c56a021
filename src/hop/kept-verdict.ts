/**
 * The verdict on a connection's peer chain, kept for the connection's later requests.
 *
 * A kept-alive HTTP connection presents the same certificates on every request, and the verifier's memo already
 * answers them from memory; what it still does per call (find the entry by the chain bytes, compare every byte,
 * build the options) is what a request on an express or fastify service spends most of Lanyard's time on. The
 * connection itself is the key here: the chain it verifies by is the same array object for as long as the
 * service's own SVID is the same object (connection-chain.ts builds a new one when that changes), and the hop
 * options are the same object for the helper's whole life.
 *
 * What the verdict depends on and how each is held, exactly as VerifiedChainMemo holds it:
 *  - the chain: the very array that was verified (identity), which holds the connection's own certificate bytes;
 *  - the hop options (trust domain, federated domains, OID, cache choice): the very options object (identity);
 *    the service's own trust domain, which the domain check reads, follows the own SVID and so the chain array;
 *  - the trust bundle: the bundle object the peer's trust domain had when the chain was verified; a source hands
 *    out a new object when its bundle changes, so `!==` on every request is "another bundle generation";
 *  - time: the intersection of the validity windows of the validated path, compared with the clock on every
 *    request;
 *  - revocation: never kept. The checker is asked on every request with the question built when the chain was
 *    verified.
 * Anything that does not hold sends the request down the full path, which gives the refusal its own error and
 * decision record. The authorizer or policy always runs afterwards with the request's own action.
 */
import type { X509Bundle } from '../bundle';
import type { RevocationQuery } from '../verify/revocation';
import { defaultVerificationCache } from '../verify/cache';
import { revocationQueryOf, type VerifyX509SvidResult } from '../verify/verify-x509-svid';
import type { HopVerifyOptions } from './peer';

export class KeptVerdict {
  private options: HopVerifyOptions | undefined;
  private chain: readonly Uint8Array[] | undefined;
  private svid: VerifyX509SvidResult | undefined;
  private bundle: X509Bundle | undefined;
  private validFrom = 0;
  private validUntil = 0;
  private query: RevocationQuery | undefined;

  /**
   * The kept result for `chain` under `options` when it still holds now: same chain array, same options, same
   * bundle object, inside the path's validity, and not revoked. Undefined otherwise, and for a checker that
   * throws (the full path asks it again and reports its error).
   */
  recall(
    options: HopVerifyOptions,
    chain: readonly Uint8Array[] | undefined,
  ): VerifyX509SvidResult | undefined {
    const svid = this.svid;
    if (svid === undefined || chain !== this.chain || options !== this.options) return undefined;
    const now = Date.now();
    if (!(now >= this.validFrom && now <= this.validUntil)) return undefined;
    if (options.bundles.getX509BundleForTrustDomain(svid.id.trustDomain) !== this.bundle) return undefined;
    if (options.revocation !== undefined) {
      try {
        if (options.revocation.isRevoked(this.query!) !== false) return undefined;
      } catch {
        return undefined;
      }
    }
    return svid;
  }

  /**
   * Keeps the verdict on `chain`, just verified in this same turn (so the bundle the source holds now is the one
   * it was verified under). Kept only where the verifier's own memo would keep it: with a chain memo in the
   * cache, and for a context whose links are all of the peer's own trust domain (a cross-domain context also
   * rests on other domains' bundles).
   */
  keep(options: HopVerifyOptions, chain: readonly Uint8Array[], svid: VerifyX509SvidResult): void {
    const cache = options.cache === undefined ? defaultVerificationCache : options.cache;
    const bundle = options.bundles.getX509BundleForTrustDomain(svid.id.trustDomain);
    if (
      cache === null ||
      cache.chains === undefined ||
      bundle === undefined ||
      (svid.context !== undefined && svid.context.version !== 1)
    ) {
      this.svid = undefined;
      return;
    }
    if (svid === this.svid && chain === this.chain && options === this.options && bundle === this.bundle)
      return;
    let validFrom = -Infinity;
    let validUntil = Infinity;
    for (const c of svid.chain) {
      validFrom = Math.max(validFrom, c.notBefore.getTime());
      validUntil = Math.min(validUntil, c.notAfter.getTime());
    }
    // Spread: the leaf's hash is taken now, before any handler is handed the leaf whose bytes it would read.
    const query = { ...revocationQueryOf(svid) };
    Object.freeze(query.delegationSessionIds);
    this.options = options;
    this.chain = chain;
    this.svid = svid;
    this.bundle = bundle;
    this.validFrom = validFrom;
    this.validUntil = validUntil;
    this.query = Object.freeze(query);
  }
}
