/**
 * The signed CRLs, built on demand: only when the CRL endpoint asks (so a server that does not serve them never
 * builds one), and only when something changed since the last build (a committed revocation, a CA change) or
 * the last one is due for refresh. Nothing on a revocation's path waits for a CRL: EndSession only marks the
 * current one out of date.
 *
 * A build is incremental: the revoked entries are kept in memory, each encoded once (crl.ts
 * encodeRevokedEntries), and so is their concatenation, which new serials extend; a build reads only the
 * revocations committed after the last one it saw (by sequence: the store reads a range of its key, not the
 * whole table), drops expired entries (the concatenation is then made again from the kept entries), and signs
 * once per CA. The PEM form is made on its first request. Once per validity period the whole list is read again, which also picks up
 * any certificate recorded for a session after its revocation was read. Builds coalesce, and follow each
 * other at least `minRebuildMs` apart, so a flood of requests and revocations costs at most one build per
 * interval; a request always gets a CRL that covers every revocation committed before it arrived.
 */
import type { CaManager } from '../../ca';
import type { SignedCrl } from '../../ca/ca-manager';
import { encodeRevokedEntries } from '../../ca/crl';
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
  revokedAt: number;
  expiresAt: number;
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
  /** The entries' DER concatenated, in the map's order; undefined after a removal or a replacement. */
  private body: Uint8Array | undefined = new Uint8Array(0);
  /** New entries not yet in `body`. */
  private appended: Uint8Array[] = [];
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
        this.body = new Uint8Array(0);
        this.appended = [];
        this.through = 0;
        this.nextExpiry = Number.POSITIVE_INFINITY;
      }
      const delta = await store.listRevokedSerialsAfter(this.through, thisUpdate);
      if (full) this.fullReadAt = thisUpdate.getTime();
      this.addAll(delta.serials);
      this.through = delta.throughSequence;
      this.dropExpired(thisUpdate);
      // Taken from the store before signing: a failure below leaves a gap, which RFC 5280 allows; a
      // number used twice, or one that goes back after a restart, it does not.
      const crlNumber = await store.nextCrlNumber();
      const nextUpdate = new Date(thisUpdate.getTime() + this.validityMs);
      const entriesDer = this.entriesDer();
      const crls = ca.signEncodedCrls({ crlNumber, thisUpdate, nextUpdate }, entriesDer);
      const active = crls.find((c) => c.state === 'active');
      if (active === undefined) throw new Error('no active CA holds a key to sign the CRL');
      let pem: string | undefined;
      const published: PublishedCrls = {
        crlNumber,
        thisUpdate,
        nextUpdate,
        revokedCount: this.entries.size,
        activeDer: active.der,
        // Base64 of every CA's CRL is larger than the DER: made once, when first asked for.
        get pem(): string {
          pem ??= crls.map((c) => encodePem('X509 CRL', c.der)).join('');
          return pem;
        },
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

  /**
   * Adds a delta's serials. A serial listed twice (its own revocation and its session's) keeps the earliest
   * revocation time and the latest expiry. New serials are encoded together, in one buffer.
   */
  private addAll(serials: readonly { serialHex: string; revokedAt: Date; expiresAt: Date }[]): void {
    const fresh: { serialHex: string; revokedAtMs: number; expiresAt: number }[] = [];
    const pending = new Map<string, number>();
    for (const s of serials) {
      const revokedAt = s.revokedAt.getTime();
      const expiresAt = s.expiresAt.getTime();
      const at = pending.get(s.serialHex);
      if (at !== undefined) {
        const f = fresh[at]!;
        f.revokedAtMs = Math.min(f.revokedAtMs, revokedAt);
        f.expiresAt = Math.max(f.expiresAt, expiresAt);
        continue;
      }
      const known = this.entries.get(s.serialHex);
      if (known === undefined) {
        pending.set(s.serialHex, fresh.length);
        fresh.push({ serialHex: s.serialHex, revokedAtMs: revokedAt, expiresAt });
      } else if (known.revokedAt <= revokedAt) {
        known.expiresAt = Math.max(known.expiresAt, expiresAt);
        this.nextExpiry = Math.min(this.nextExpiry, known.expiresAt);
      } else {
        // Revoked earlier than the entry says: its bytes change, so the concatenation is made again.
        known.revokedAt = revokedAt;
        known.expiresAt = Math.max(known.expiresAt, expiresAt);
        known.der = encodeRevokedEntries([{ serialHex: s.serialHex, revokedAtMs: revokedAt }])[0]!;
        this.body = undefined;
        this.nextExpiry = Math.min(this.nextExpiry, known.expiresAt);
      }
    }
    const ders = encodeRevokedEntries(fresh);
    for (let i = 0; i < fresh.length; i++) {
      const f = fresh[i]!;
      this.entries.set(f.serialHex, { revokedAt: f.revokedAtMs, expiresAt: f.expiresAt, der: ders[i]! });
      this.nextExpiry = Math.min(this.nextExpiry, f.expiresAt);
    }
    if (this.body !== undefined) for (const d of ders) this.appended.push(d);
  }

  /** The revokedCertificates content: the kept concatenation, extended or made again as needed. */
  private entriesDer(): Uint8Array {
    if (this.body === undefined) {
      const all: Uint8Array[] = [];
      for (const e of this.entries.values()) all.push(e.der);
      this.body = concatBytes(all);
    } else if (this.appended.length > 0) {
      this.body = concatBytes([this.body, ...this.appended]);
    }
    this.appended = [];
    return this.body;
  }

  /** Expired certificates leave the list; a pass over it only when the earliest expiry has passed. */
  private dropExpired(now: Date): void {
    if (now.getTime() < this.nextExpiry) return;
    let next = Number.POSITIVE_INFINITY;
    const t = now.getTime();
    for (const [serial, e] of this.entries) {
      if (e.expiresAt <= t) {
        this.entries.delete(serial);
        this.body = undefined;
      } else next = Math.min(next, e.expiresAt);
    }
    this.nextExpiry = next;
    if (this.body === undefined) this.appended = [];
  }
}
