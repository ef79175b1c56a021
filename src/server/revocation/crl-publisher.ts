/**
 * The signed CRLs, built on demand: only when the CRL endpoint asks (so a server that does not serve them never
 * builds one), and only when something changed since the last build (a committed revocation, a CA change) or
 * the last one is due for refresh. Nothing on a revocation's path waits for a CRL: EndSession only marks the
 * current one out of date.
 *
 * Off the server's thread: a build runs in a worker thread (crl-builder.ts WorkerCrlBuilder), which keeps the
 * revoked list, reads the revocations (SQLite: on its own read-only connection), encodes and signs; the server's
 * thread only takes the next cRLNumber and hands over the CA key handles. Builds are incremental (only the
 * revocations committed after the last build are read, a primary-key range) and once per validity period the
 * whole list is read again, which also picks up any certificate recorded for a session after its revocation was
 * read. Builds coalesce, and follow each other at least `minRebuildMs` apart.
 *
 * What a request gets (`current()`), the staleness bound:
 * - nothing built yet, or the last CRL is past its nextUpdate: it waits for a build; a failed build is an error
 *   (the HTTP listener answers 503), never a CRL past its nextUpdate;
 * - the last CRL is up to date: that one;
 * - the last CRL is out of date (a revocation since, or due for refresh) but inside its validity: a build starts
 *   (or the running one is joined) and the request waits for it up to `maxWaitMs`; if it is not done by then, the
 *   request gets the last CRL (as long as it is still inside its validity) and the build goes on for the
 *   requests that follow. So a served CRL lists every revocation committed before the request arrived, unless a
 *   build was still running `maxWaitMs` after it, and is never served past its nextUpdate.
 */
import type { CaManager } from '../../ca';
import type { SignedCrl } from '../../ca/ca-manager';
import { CaNotReadyError, InternalError } from '../../errors';
import type { Store } from '../../store/store';
import { SqliteStore } from '../../store';
import type { Logger } from '../../internal/logging';
import type { RevocationFeed } from '../sessions/revocation-feed';
import type { CrlBufferHold } from './crl-buffers';
import {
  InlineCrlBuilder,
  WorkerCrlBuilder,
  type CrlBuilder,
  type WorkerCrlBuilderOptions,
} from './crl-builder';

export const CRL_DEFAULTS = Object.freeze({
  /** nextUpdate - thisUpdate: how long a fetched CRL may be relied on. */
  validitySeconds: 3600,
  /** A CRL older than this is rebuilt on the next request even when nothing changed (a sixth of the validity). */
  refreshSeconds: 600,
  /** Least time between the end of one build and the start of the next. */
  minRebuildMs: 1000,
  /**
   * How long a request waits for a build when an older CRL, still inside its validity, could be served instead.
   * The build is off the server's thread, so waiting costs the requester only.
   */
  maxWaitMs: 5000,
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
  /**
   * Every CA's CRL (prepared, active, old): `/crl/<td>.pem` serves them as PEM, encoded piece by piece as it
   * writes (crl-body.ts pemChunks), so no PEM string of the whole is ever made.
   */
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
  maxWaitMs?: number;
  /**
   * Where builds run: 'worker' (default) in a worker thread; 'inline' on the server's thread, as before the
   * worker (kept as the reference the worker's CRLs are compared against).
   */
  builder?: 'worker' | 'inline';
  /** The worker's bounded reads and priority (CRL_WORKER_DEFAULTS); for tests and benchmarks. */
  worker?: Pick<WorkerCrlBuilderOptions, 'readChunk' | 'niceness' | 'sliceMs' | 'idle'>;
}

export class CrlPublisher {
  private current_: PublishedCrls | undefined;
  /** Bumped by every committed revocation and CA change; a build covers the value it started with. */
  private version = 0;
  private builtVersion = -1;
  private building: { promise: Promise<PublishedCrls>; version: number } | undefined;
  private lastBuildEnd = 0;
  /** The highest revocation sequence the builder's list covers. */
  private through = 0;
  private fullReadAt = Number.NEGATIVE_INFINITY;
  private builds_ = 0;
  private readonly unsubscribe: (() => void)[] = [];
  /** The buffer each published CRL set lives in, when the build worker wrote it into a reused one. */
  private readonly holds = new WeakMap<PublishedCrls, CrlBufferHold>();
  private stopped = false;
  private readonly validityMs: number;
  private readonly refreshMs: number;
  private readonly minRebuildMs: number;
  private readonly maxWaitMs: number;
  private readonly builder: CrlBuilder;

  constructor(private readonly options: CrlPublisherOptions) {
    this.validityMs = (options.validitySeconds ?? CRL_DEFAULTS.validitySeconds) * 1000;
    this.refreshMs = (options.refreshSeconds ?? CRL_DEFAULTS.refreshSeconds) * 1000;
    this.minRebuildMs = options.minRebuildMs ?? CRL_DEFAULTS.minRebuildMs;
    this.maxWaitMs = options.maxWaitMs ?? CRL_DEFAULTS.maxWaitMs;
    const { store } = options;
    this.builder =
      options.builder === 'inline'
        ? new InlineCrlBuilder(store)
        : new WorkerCrlBuilder(store, {
            ...options.worker,
            ...(store instanceof SqliteStore && {
              sqliteFile: store.file,
              durable: () => store.durableBarrier(),
            }),
          });
  }

  /** Follows revocations and CA changes (marking the CRLs out of date); builds nothing by itself. */
  start(): void {
    const changed = (): void => this.invalidate();
    this.unsubscribe.push(this.options.feed.subscribe(changed), this.options.ca.onBundleChange(changed));
  }

  /** Stops following changes and stops the build worker (a build it held fails). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const u of this.unsubscribe.splice(0)) u();
    await this.builder.close();
  }

  /** Something the CRLs list may have changed: the next request rebuilds them. */
  invalidate(): void {
    this.version += 1;
  }

  /** How many builds ran since start (a server that does not serve CRLs runs none). */
  get builds(): number {
    return this.builds_;
  }

  /** Whether a build is running (or waiting for its `minRebuildMs` turn). */
  get rebuilding(): boolean {
    return this.building !== undefined;
  }

  /** The CRLs of the last build, without building; undefined before the first. */
  published(): PublishedCrls | undefined {
    return this.pinned(this.current_);
  }

  /**
   * `current()` for a reader that says when it is done (`release`, idempotent): until then the bytes stay as
   * they are; after it, a later build may write over them (crl-buffers.ts). The CRL HTTP listener reads this way.
   */
  async read(): Promise<{ crls: PublishedCrls; release: () => void }> {
    // A CRL settled earlier may have gone back to the pool between its build and this turn: ask again.
    for (let tries = 0; tries < 3; tries++) {
      const crls = await this.latest();
      const hold = this.holds.get(crls);
      if (hold === undefined) return { crls, release: () => {} };
      const release = hold.read();
      if (release !== undefined) return { crls, release };
    }
    throw new InternalError('the published CRL changed three times while being read');
  }

  /**
   * The CRLs to serve now (see the file's comment for the staleness bound): the last ones when nothing changed
   * since and they are not due for refresh; else a new build (shared with concurrent callers), awaited for at
   * most `maxWaitMs` when the last ones are still inside their validity.
   * @throws when there is no CRL inside its validity and the build failed.
   */
  async current(): Promise<PublishedCrls> {
    return this.pinned(await this.latest());
  }

  /** What `current()` returns, its buffer not pinned. */
  private async latest(): Promise<PublishedCrls> {
    const c = this.servable();
    if (c !== undefined && this.builtVersion === this.version && !this.dueForRefresh(c)) return c;
    const build = this.rebuild();
    if (c === undefined) return build;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<'waited'>((resolve) => {
      timer = setTimeout(() => resolve('waited'), this.maxWaitMs);
    });
    try {
      const first = await Promise.race([build, waited]);
      if (first !== 'waited') return first;
    } finally {
      clearTimeout(timer);
    }
    // Still building: the last CRL if it is still valid now, else the build's.
    return this.servable() ?? build;
  }

  /** Builds now (or joins the build that covers every change so far). */
  refresh(): Promise<PublishedCrls> {
    this.invalidate();
    return this.rebuild().then((c) => this.pinned(c));
  }

  /**
   * `c`, whose bytes are now never written over: handed to a caller that keeps them without saying when it is
   * done (tests, scripts, operators' tools). The server's own listener uses `read()`.
   */
  private pinned<T extends PublishedCrls | undefined>(c: T): T {
    if (c !== undefined) this.holds.get(c)?.pin();
    return c;
  }

  /**
   * Stops the build worker at once, as a crash would: a build it held fails (a request then gets the last CRL
   * inside its validity, or an error), and the next build reads the list whole in a new worker. With `midBuild`,
   * once the worker began a build (the running one, or the next). For drills and tests.
   */
  async stopBuildWorkerForDrill(options: { midBuild?: boolean } = {}): Promise<void> {
    if (this.builder instanceof WorkerCrlBuilder) await this.builder.stopWorker(options);
  }

  /** The last CRLs while the clock is before their nextUpdate; never one past it. */
  private servable(): PublishedCrls | undefined {
    const c = this.current_;
    if (c === undefined) return undefined;
    return this.options.clock().getTime() < c.nextUpdate.getTime() ? c : undefined;
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
        const c = this.servable();
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
    const version = this.version;
    const thisUpdate = clock();
    const started = Date.now();
    try {
      if (this.stopped) throw new CaNotReadyError('the CRL publisher is stopped');
      const full = thisUpdate.getTime() - this.fullReadAt >= this.validityMs;
      const signers = ca.crlSigners();
      if (!signers.some((s) => s.state === 'active')) {
        throw new CaNotReadyError('no active CA holds a key to sign the CRL');
      }
      // Taken from the store before signing: a failure below leaves a gap, which RFC 5280 allows; a
      // number used twice, or one that goes back after a restart, it does not.
      const crlNumber = await store.nextCrlNumber();
      const nextUpdate = new Date(thisUpdate.getTime() + this.validityMs);
      const built = await this.builder.build({
        full,
        after: full ? 0 : this.through,
        header: { crlNumber, thisUpdate, nextUpdate },
        signers,
      });
      if (built.full) this.fullReadAt = thisUpdate.getTime();
      this.through = built.throughSequence;
      const byId = new Map(signers.map((s) => [s.authorityId, s]));
      const crls: SignedCrl[] = built.crls.map((c) => {
        const s = byId.get(c.authorityId)!;
        return { authorityId: c.authorityId, state: s.state, issuer: s.cert, der: c.der };
      });
      const active = crls.find((c) => c.state === 'active')!;
      const published: PublishedCrls = {
        crlNumber,
        thisUpdate,
        nextUpdate,
        revokedCount: built.revokedCount,
        activeDer: active.der,
        crls,
      };
      const previous = this.current_;
      if (built.hold !== undefined) this.holds.set(published, built.hold);
      this.current_ = published;
      if (previous !== undefined) this.holds.get(previous)?.unpublish();
      this.builtVersion = version;
      this.builds_ += 1;
      logger.debug(
        {
          crlNumber: crlNumber.toString(),
          revoked: built.revokedCount,
          added: built.added,
          reads: built.reads,
          full: built.full,
          cas: crls.length,
          durationMs: Date.now() - started,
        },
        'CRL published',
      );
      return published;
    } catch (e) {
      // The builder's list may be half-updated: read it whole next time.
      this.fullReadAt = Number.NEGATIVE_INFINITY;
      const fallback = this.servable();
      logger.warn(
        { err: e },
        fallback !== undefined
          ? 'CRL build failed; the previous CRL, still inside its validity, stays published'
          : 'CRL build failed; no CRL inside its validity to serve',
      );
      if (fallback !== undefined) return fallback;
      throw e;
    } finally {
      this.lastBuildEnd = Date.now();
    }
  }
}
