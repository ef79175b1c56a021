/**
 * The signed CRLs, built on demand: only when the CRL endpoint asks (so a server that does not serve them never
 * builds one), and only when something changed since the last build (a committed revocation, a CA change) or
 * the last one is due for refresh. Nothing on a revocation's path waits for a CRL: EndSession only marks the
 * current one out of date.
 *
 * A build is incremental: the revoked entries are kept in memory, each encoded once (crl.ts revokedEntryDer);
 * a build reads only the revocations committed after the last one it saw, drops expired entries, and signs
 * the concatenation once per CA. Once per validity period the whole list is read again, which also picks up
 * any certificate recorded for a session after its revocation was read. Builds coalesce, and follow each
 * other at least `minRebuildMs` apart, so a flood of requests and revocations costs at most one build per
 * interval; a request always gets a CRL that covers every revocation committed before it arrived.
 */
import type { CaManager } from '../../ca';
import type { SignedCrl } from '../../ca/ca-manager';
import { revokedEntryDer } from '../../ca/crl';
import type { Store } from '../../store/store';
import { concatBytes } from '../../x509/der';
import { encodePem } from '../../x509/pem';
import type { Logger } from '../../internal/logging';
import type { RevocationFeed } from '../sessions/revocation-feed';

export const CRL_DEFAULTS = Object.freeze({
  /** nextUpdate - thisUpdate: how long a fetched CRL may be relied on. */
  validitySeconds: 3600,
  /** A CRL older than this is rebuilt on the next request even when nothing changed (a sixth of the validity). */
  refreshSeconds: 600,
  /** Least time between the end of one build and the start of the next. */
  minRebuildMs: 1000,
});

export interface PublishedCrls {
  /** Grows with every publication, across restarts and CA rotations (a counter in the store). */
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  /** How many serials each CRL lists. */
  revokedCount: number;
  /** The active CA's CRL, DER: what `/crl/<td>.crl` serves. */
  activeDer: Uint8Array;
  /** Every CA's CRL (prepared, active, old), PEM, concatenated: what `/crl/<td>.pem` serves. */
  pem: string;
  crls: readonly SignedCrl[];
}

export interface CrlPublisherOptions {
  store: Pick<Store, 'listRevokedSerialsAfter' | 'nextCrlNumber'>;
  ca: CaManager;
  feed: RevocationFeed;
  clock: () => Date;
  logger: Logger;
  validitySeconds?: number;
  refreshSeconds?: number;
  minRebuildMs?: number;
}

interface Entry {
  revokedAt: Date;
  expiresAt: Date;
  der: Uint8Array;
}

export class CrlPublisher {
  private current_: PublishedCrls | undefined;
  /** Bumped by every committed revocation and CA change; a build covers the value it started with. */
  private version = 0;
  private builtVersion = -1;
  private building: { promise: Promise<PublishedCrls>; version: number } | undefined;
  private lastBuildEnd = 0;
  private readonly entries = new Map<string, Entry>();
  private through = 0;
  private fullReadAt = Number.NEGATIVE_INFINITY;
  private nextExpiry = Number.POSITIVE_INFINITY;
  private builds_ = 0;
  private readonly unsubscribe: (() => void)[] = [];
  private stopped = false;
  private readonly validityMs: number;
  private readonly refreshMs: number;
  private readonly minRebuildMs: number;

  constructor(private readonly options: CrlPublisherOptions) {
    this.validityMs = (options.validitySeconds ?? CRL_DEFAULTS.validitySeconds) * 1000;
    this.refreshMs = (options.refreshSeconds ?? CRL_DEFAULTS.refreshSeconds) * 1000;
    this.minRebuildMs = options.minRebuildMs ?? CRL_DEFAULTS.minRebuildMs;
  }

  /** Follows revocations and CA changes (marking the CRLs out of date); builds nothing by itself. */
  start(): void {
    const changed = (): void => this.invalidate();
    this.unsubscribe.push(this.options.feed.subscribe(changed), this.options.ca.onBundleChange(changed));
  }

  stop(): void {
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
  }

  /** Something the CRLs list may have changed: the next request rebuilds them. */
  invalidate(): void {
    this.version += 1;
  }

  /** How many builds ran since start (a server that does not serve CRLs runs none). */
  get builds(): number {
    return this.builds_;
  }

  /** The CRLs of the last build, without building; undefined before the first. */
  published(): PublishedCrls | undefined {
    return this.current_;
  }

  /**
   * The CRLs to serve now: the last ones when nothing changed since and they are not due for refresh, else
   * a new build (shared with concurrent callers). A failed build keeps the previous CRLs published.
   * @throws when no CRL could be built at all.
   */
  async current(): Promise<PublishedCrls> {
    const c = this.current_;
    if (c !== undefined && this.builtVersion === this.version && !this.dueForRefresh(c)) return c;
    return this.rebuild();
  }

  /** Builds now (or joins the build that covers every change so far). */
  refresh(): Promise<PublishedCrls> {
    this.invalidate();
    return this.rebuild();
  }

  private dueForRefresh(c: PublishedCrls): boolean {
    return this.options.clock().getTime() - c.thisUpdate.getTime() >= this.refreshMs;
  }

  private rebuild(): Promise<PublishedCrls> {
    const running = this.building;
    if (running !== undefined && running.version === this.version) return running.promise;
    const version = this.version;
    const promise = (running?.promise ?? Promise.resolve())
      .catch(() => undefined)
      .then(async () => {
        const c = this.current_;
        if (c !== undefined && this.builtVersion >= version && !this.dueForRefresh(c)) return c;
        const wait = this.lastBuildEnd + this.minRebuildMs - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        return this.build();
      });
    const entry = { promise, version };
    this.building = entry;
    const clear = (): void => {
      if (this.building === entry) this.building = undefined;
    };
    promise.then(clear, clear);
    return promise;
  }

  private async build(): Promise<PublishedCrls> {
    const { store, ca, clock, logger } = this.options;
    if (this.stopped) throw new Error('the CRL publisher is stopped');
    const version = this.version;
    const thisUpdate = clock();
    const started = Date.now();
    try {
      const full = thisUpdate.getTime() - this.fullReadAt >= this.validityMs;
      if (full) {
        this.entries.clear();
        this.through = 0;
        this.nextExpiry = Number.POSITIVE_INFINITY;
      }
      const delta = await store.listRevokedSerialsAfter(this.through, thisUpdate);
      if (full) this.fullReadAt = thisUpdate.getTime();
      for (const s of delta.serials) this.add(s.serialHex, s.revokedAt, s.expiresAt);
      this.through = delta.throughSequence;
      this.dropExpired(thisUpdate);
      // Taken from the store before signing: a failure below leaves a gap, which RFC 5280 allows; a
      // number used twice, or one that goes back after a restart, it does not.
      const crlNumber = await store.nextCrlNumber();
      const nextUpdate = new Date(thisUpdate.getTime() + this.validityMs);
      const entriesDer = concatBytes([...this.entries.values()].map((e) => e.der));
      const crls = ca.signEncodedCrls({ crlNumber, thisUpdate, nextUpdate }, entriesDer);
      const active = crls.find((c) => c.state === 'active');
      if (active === undefined) throw new Error('no active CA holds a key to sign the CRL');
      const published: PublishedCrls = {
        crlNumber,
        thisUpdate,
        nextUpdate,
        revokedCount: this.entries.size,
        activeDer: active.der,
        pem: crls.map((c) => encodePem('X509 CRL', c.der)).join(''),
        crls,
      };
      this.current_ = published;
      this.builtVersion = version;
      this.builds_ += 1;
      logger.debug(
        {
          crlNumber: crlNumber.toString(),
          revoked: this.entries.size,
          added: delta.serials.length,
          full,
          cas: crls.length,
          durationMs: Date.now() - started,
        },
        'CRL published',
      );
      return published;
    } catch (e) {
      // The in-memory list may be half-updated: read it whole next time.
      this.fullReadAt = Number.NEGATIVE_INFINITY;
      logger.warn({ err: e }, 'CRL build failed; the previous CRL stays published');
      if (this.current_ !== undefined) return this.current_;
      throw e;
    } finally {
      this.lastBuildEnd = Date.now();
    }
  }

  /** A serial listed twice (its own revocation and its session's) keeps the earliest revocation time. */
  private add(serialHex: string, revokedAt: Date, expiresAt: Date): void {
    const known = this.entries.get(serialHex);
    if (known !== undefined && known.revokedAt.getTime() <= revokedAt.getTime()) {
      if (expiresAt.getTime() > known.expiresAt.getTime()) known.expiresAt = expiresAt;
      this.nextExpiry = Math.min(this.nextExpiry, known.expiresAt.getTime());
      return;
    }
    const entry: Entry = {
      revokedAt,
      expiresAt:
        known !== undefined && known.expiresAt.getTime() > expiresAt.getTime() ? known.expiresAt : expiresAt,
      der: revokedEntryDer({ serialHex, revokedAt }),
    };
    this.entries.set(serialHex, entry);
    this.nextExpiry = Math.min(this.nextExpiry, entry.expiresAt.getTime());
  }

  /** Expired certificates leave the list; a pass over it only when the earliest expiry has passed. */
  private dropExpired(now: Date): void {
    if (now.getTime() < this.nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    for (const [serial, e] of this.entries) {
      if (e.expiresAt.getTime() <= now.getTime()) this.entries.delete(serial);
      else next = Math.min(next, e.expiresAt.getTime());
    }
    this.nextExpiry = next;
  }
}
