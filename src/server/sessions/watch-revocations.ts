/**
 * WatchRevocations: the stored state (all of it, or what follows the watcher's sequence) in pages bounded by
 * bytes, then every new revocation as it commits, and a heartbeat while nothing happens.
 *
 * Every watcher pulls from the store by sequence. A committed revocation is published to the watchers
 * (RevocationFeed), and a watcher that has sent everything before it writes it straight from the published
 * records; one that is behind (still paging, or waiting for its peer) reads the store from its own sequence
 * when it can write again. So a watcher never holds more than one page plus references to published batches,
 * whatever the size of the state or how slowly its peer reads; it subscribes before its first read, so a
 * revocation committed in between is delivered (anything at or below the last sent sequence is dropped).
 *
 * A watcher that asks for it (request `packed`) gets its pages in the compact form of
 * src/internal/revocation-page.ts. Its initial state is read in chunks of `snapshotRows` by sequence (keyset
 * paging: `sequence > after LIMIT n`, never OFFSET), each packed into pages once and, when complete and
 * without a gap in its sequences, kept for the next watcher that starts at the same sequence: a thousand
 * verifiers starting together read and encode the state once. The kept chunks are bounded in bytes (oldest
 * dropped first); a chunk with a gap (pruned rows, or a sequence another server's transaction has not
 * committed yet) is never kept, so a later watcher reads it again and gets what committed since. Once the server
 * is ready it reads the chunks ahead of the first watcher (`warm`, config revocation_feed.warm_snapshot), so the
 * first new watcher after a start is served as a later one is.
 *
 * Backpressure: a watcher writes its next message only once the previous one was taken by the HTTP/2 layer
 * (the write callback). A peer that takes nothing (a zero flow-control window) therefore holds one page; one
 * that stays so for the stall timeout is cut with RST_STREAM. Limits on watchers in all, per connection and
 * per caller SPIFFE ID refuse new watches with RESOURCE_EXHAUSTED.
 */
import type * as grpc from '@grpc/grpc-js';
import { CaNotReadyError, QuotaExceededError } from '../../errors';
import type { WatchRevocationsRequest, WatchRevocationsResponse } from '../../gen/lanyard/v1/session';
import type { Store } from '../../store/store';
import type { RevocationRecord } from '../../store/types';
import { toStatus } from '../../internal/grpc-call';
import { resetServerStream } from '../grpc-stream-reset';
import type { Logger } from '../../internal/logging';
import { packPages, type PackedPage } from '../../internal/revocation-page';
import { SqliteStore } from '../../store';
import { StoreSnapshotReader, WorkerSnapshotReader, type SnapshotReader } from './revocation-snapshot';
import type { RevocationFeed } from './revocation-feed';
import { revocationToProto } from './to-proto';

export type RevocationWatch = grpc.ServerWritableStream<WatchRevocationsRequest, WatchRevocationsResponse>;

export const WATCH_DEFAULTS = Object.freeze({
  /** Bytes of revocations in one message: far below gRPC's 4 MiB default, small enough to hold per watcher. */
  pageBytes: 32 * 1024,
  /** Rows read from the store at once while paging. */
  readRows: 512,
  /** Rows read at once for a packed initial state (a chunk kept for the watchers that follow). */
  snapshotRows: 8192,
  /** Bytes of packed chunks kept for watchers that start at the same sequence. */
  snapshotCacheBytes: 64 * 1024 * 1024,
  /**
   * Read the stored state into the kept chunks once the server is ready (`warmSnapshot`), so the first new
   * watcher after a start is served like every later one (config revocation_feed.warm_snapshot).
   */
  warmSnapshot: true,
});

/** What one read of the initial state gives: its pages, and whether the read came back full (more follow). */
interface SnapshotChunk {
  pages: readonly PackedPage[];
  full: boolean;
  bytes: number;
}

const NO_BYTES = Buffer.alloc(0);

export interface RevocationWatchersOptions {
  store: Pick<Store, 'listRevocations' | 'lastRevocationSequence'>;
  feed: RevocationFeed;
  logger: Logger;
  /** Open watches across every listener. */
  maxWatchers: number;
  heartbeatMs: number;
  stallTimeoutMs: number;
  pageBytes?: number;
  readRows?: number;
  snapshotRows?: number;
  snapshotCacheBytes?: number;
  /**
   * Where the initial state is read and packed: 'worker' (default with a SQLite store) in a worker thread with
   * its own read-only connection; 'inline' through the store on the server's thread (always so with any other
   * store).
   */
  snapshotReader?: 'worker' | 'inline';
}

/** What a warm-up did (RevocationWatchers.warm). */
export interface SnapshotWarmUp {
  /**
   * 'done': every full chunk of the state is kept; 'full': stopped before the kept chunks would pass
   * snapshotCacheBytes; 'not-kept': a chunk was not kept (a gap in its sequences: pruned rows, or another
   * server's transaction not committed yet), so nothing after it was read; 'skipped': less
   * than one full chunk stored, or the state is read on the server's thread; 'failed': a read failed (each
   * watcher reads for itself, as without a warm-up); 'closed': the server closed meanwhile.
   */
  outcome: 'done' | 'full' | 'not-kept' | 'skipped' | 'failed' | 'closed';
  chunks: number;
  bytes: number;
}

/** How one listener admits watchers. */
export interface WatchAdmission {
  /**
   * Authenticates the caller and returns the identity its per-identity limit counts; undefined = no
   * authentication (the local admin socket). A throw refuses the watch with the error's status.
   */
  authenticate?: (call: RevocationWatch) => Promise<string>;
  perConnection?: number;
  perIdentity?: number;
}

export interface WatchStats {
  /** Open watches. */
  watchers: number;
  /** Watches with a message their peer has not taken yet. */
  waiting: number;
  /** Bytes of revocations in those messages (an upper bound of what the watches hold). */
  queuedBytes: number;
  /** Watches refused by a limit since start. */
  refused: number;
  /** Watches cut because their peer took nothing for the stall timeout, since start. */
  stalled: number;
}

/** The open WatchRevocations streams of a server, their limits, heartbeats and stall detection. */
export class RevocationWatchers {
  private readonly open = new Set<Watcher>();
  private readonly byConnection = new Map<string, number>();
  private readonly byIdentity = new Map<string, number>();
  private refused = 0;
  private stalled = 0;
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  readonly pageBytes: number;
  readonly readRows: number;
  readonly snapshotRows: number;
  private readonly snapshotCacheBytes: number;
  /** Complete chunks of the initial state by the sequence they follow, oldest first. */
  private readonly chunks = new Map<number, SnapshotChunk>();
  private chunkBytes = 0;
  private readonly reading = new Map<number, Promise<SnapshotChunk>>();
  private readonly reader: SnapshotReader;
  /** The `after` of the last reads handed to the reader (at most 256), in order: for tests and operators. */
  private readonly readLog: number[] = [];
  private warming: Promise<SnapshotWarmUp> | undefined;

  constructor(readonly options: RevocationWatchersOptions) {
    this.pageBytes = options.pageBytes ?? WATCH_DEFAULTS.pageBytes;
    this.readRows = options.readRows ?? WATCH_DEFAULTS.readRows;
    this.snapshotRows = options.snapshotRows ?? WATCH_DEFAULTS.snapshotRows;
    this.snapshotCacheBytes = options.snapshotCacheBytes ?? WATCH_DEFAULTS.snapshotCacheBytes;
    const { store } = options;
    this.reader =
      options.snapshotReader !== 'inline' && store instanceof SqliteStore
        ? new WorkerSnapshotReader(store.file, () => store.durableBarrier())
        : new StoreSnapshotReader(store);
  }

  /**
   * The packed revocations after `after`, up to snapshotRows of them: kept, or read once for every watcher
   * that asks at the same time. With the worker reader a full chunk has the next one read ahead, so while a
   * watcher writes this chunk's pages the next is being read.
   */
  snapshotChunk(after: number): Promise<SnapshotChunk> {
    return this.chunkAt(after, true);
  }

  /** snapshotChunk; `readAhead` false for the warm-up, which asks for each next chunk itself. */
  private chunkAt(after: number, readAhead: boolean): Promise<SnapshotChunk> {
    const kept = this.chunks.get(after);
    if (kept !== undefined) return Promise.resolve(kept);
    let read = this.reading.get(after);
    if (read === undefined) {
      read = this.readChunk(after).finally(() => this.reading.delete(after));
      this.reading.set(after, read);
      if (readAhead)
        read.then(
          (chunk) => {
            const last = chunk.pages[chunk.pages.length - 1]?.sequence;
            // Only in the reader's thread: on this one a read-ahead would run back to back with the watcher's
            // own reads and starve every other call.
            if (!(this.reader instanceof WorkerSnapshotReader)) return;
            if (!chunk.full || last === undefined || this.closing) return;
            // Read ahead; a failure is met again (and reported) by the watcher that asks for it.
            if (!this.chunks.has(last) && !this.reading.has(last)) this.snapshotChunk(last).catch(() => {});
          },
          () => {},
        );
    }
    return read;
  }

  /**
   * Reads the stored state into the kept chunks before the first watcher asks for it: the chain of chunks from
   * sequence 0, one at a time in the reader's worker, until the state ends, a chunk is not kept (a gap), or the
   * next chunk would take the kept ones past snapshotCacheBytes (that would drop the oldest, the start of the
   * state every new watcher asks for first). A watcher that asks meanwhile joins the read in progress
   * (snapshotChunk shares it) rather than starting a second one, and the chunk after it is read next either
   * way. Only with the worker reader: on the server's thread it would be a million rows decoded and packed
   * beside every call. Once per server; never rejects (a failed read is the next watcher's to meet).
   */
  warm(): Promise<SnapshotWarmUp> {
    this.warming ??= this.warmChain();
    return this.warming;
  }

  /** The warm-up started (by the server once ready, when configured), or undefined if none was. */
  get warmUp(): Promise<SnapshotWarmUp> | undefined {
    return this.warming;
  }

  /** The `after` of the last reads handed to the snapshot reader (at most 256), oldest first. */
  snapshotReads(): readonly number[] {
    return [...this.readLog];
  }

  private async warmChain(): Promise<SnapshotWarmUp> {
    const started = Date.now();
    const result = (outcome: SnapshotWarmUp['outcome']): SnapshotWarmUp => {
      const r = { outcome, chunks: this.chunks.size, bytes: this.chunkBytes };
      if (outcome !== 'skipped') {
        this.options.logger.info(
          { ...r, ms: Date.now() - started },
          'revocation state read for new watchers',
        );
      }
      return r;
    };
    if (!(this.reader instanceof WorkerSnapshotReader)) return result('skipped');
    try {
      // Only a full chunk is kept, and sequences number the rows: below one chunk's worth nothing would be.
      if ((await this.options.store.lastRevocationSequence()) < this.snapshotRows) return result('skipped');
      let after = 0;
      for (;;) {
        if (this.closing) return result('closed');
        const chunk = await this.chunkAt(after, false);
        if (!chunk.full) return result('done');
        if (this.chunks.get(after) !== chunk) return result('not-kept');
        // The next chunk is about this one's size.
        if (this.chunkBytes + chunk.bytes > this.snapshotCacheBytes) return result('full');
        after = chunk.pages[chunk.pages.length - 1]!.sequence;
      }
    } catch (e) {
      if (this.closing) return result('closed');
      this.options.logger.warn({ err: e }, 'reading the revocation state ahead of watchers failed');
      return result('failed');
    }
  }

  /** How the initial state is read: in a worker thread (SQLite) or through the store here. */
  get snapshotReaderKind(): 'worker' | 'inline' {
    return this.reader instanceof WorkerSnapshotReader ? 'worker' : 'inline';
  }

  /**
   * Stops the snapshot reader's worker as a crash would (the reads it held fail: their watchers get UNAVAILABLE
   * and resume from their sequence): at once, or with `midRead` in the middle of the next read it takes. For
   * drills and tests.
   */
  async stopSnapshotWorkerForDrill(options: { midRead?: boolean } = {}): Promise<void> {
    if (this.reader instanceof WorkerSnapshotReader) await this.reader.stopWorker(options);
  }

  /** Chunks kept for watchers to come: how many, and their bytes. */
  snapshotCache(): { chunks: number; bytes: number } {
    return { chunks: this.chunks.size, bytes: this.chunkBytes };
  }

  private async readChunk(after: number): Promise<SnapshotChunk> {
    if (this.readLog.length === 256) this.readLog.shift();
    this.readLog.push(after);
    const read = await this.reader.read(after, this.snapshotRows, this.pageBytes);
    const pages = read.pages;
    const chunk: SnapshotChunk = {
      pages,
      full: read.rows === this.snapshotRows,
      bytes: pages.reduce((n, p) => n + p.bytes.length, 0),
    };
    // Only a full chunk without a gap can never gain a row: every sequence in its range is in it.
    if (chunk.full && read.contiguous && chunk.bytes <= this.snapshotCacheBytes) {
      this.chunks.set(after, chunk);
      this.chunkBytes += chunk.bytes;
      for (const [key, c] of this.chunks) {
        if (this.chunkBytes <= this.snapshotCacheBytes) break;
        this.chunks.delete(key);
        this.chunkBytes -= c.bytes;
      }
    }
    return chunk;
  }

  /** The handler for one listener's SessionService.WatchRevocations. */
  handler(admission: WatchAdmission = {}): (call: RevocationWatch) => void {
    return (call) => void this.admit(call, admission);
  }

  stats(): WatchStats {
    let waiting = 0;
    let queuedBytes = 0;
    for (const w of this.open) {
      if (w.writing !== undefined) {
        waiting += 1;
        queuedBytes += w.writing.bytes;
      }
    }
    return { watchers: this.open.size, waiting, queuedBytes, refused: this.refused, stalled: this.stalled };
  }

  /** Ends every watch (graceful close: watches never end on their own) and refuses new ones. */
  closeAll(): void {
    this.closing = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    for (const w of [...this.open]) w.end();
    this.reader.close();
  }

  private async admit(call: RevocationWatch, admission: WatchAdmission): Promise<void> {
    let identity: string | undefined;
    try {
      if (this.closing) throw new CaNotReadyError('the server is shutting down');
      identity = admission.authenticate === undefined ? undefined : await admission.authenticate(call);
      if (call.cancelled) return;
      this.checkLimits(call.getPeer(), identity, admission);
    } catch (e) {
      this.options.logger.warn(
        { method: 'WatchRevocations', peer: call.getPeer(), identity, err: (e as Error).message },
        'revocation watch refused',
      );
      call.emit('error', toStatus(e));
      return;
    }
    const connection = call.getPeer();
    count(this.byConnection, connection, 1);
    if (identity !== undefined) count(this.byIdentity, identity, 1);
    const watcher = new Watcher(this, call, () => {
      this.open.delete(watcher);
      count(this.byConnection, connection, -1);
      if (identity !== undefined) count(this.byIdentity, identity, -1);
    });
    this.open.add(watcher);
    this.ensureTimer();
    watcher.start();
  }

  private checkLimits(connection: string, identity: string | undefined, admission: WatchAdmission): void {
    const refuse = (what: string, limit: number): never => {
      this.refused += 1;
      throw new QuotaExceededError(
        `too many revocation watches ${what} (limit ${limit}): reuse the open one`,
      );
    };
    if (this.open.size >= this.options.maxWatchers) refuse('on this server', this.options.maxWatchers);
    if (
      admission.perConnection !== undefined &&
      (this.byConnection.get(connection) ?? 0) >= admission.perConnection
    )
      refuse('on this connection', admission.perConnection);
    if (
      identity !== undefined &&
      admission.perIdentity !== undefined &&
      (this.byIdentity.get(identity) ?? 0) >= admission.perIdentity
    )
      refuse(`for ${identity}`, admission.perIdentity);
  }

  /** One timer for every watch: heartbeats and stall detection. */
  private ensureTimer(): void {
    if (this.timer !== undefined) return;
    const tickMs = Math.max(50, Math.min(this.options.heartbeatMs, this.options.stallTimeoutMs) / 4);
    this.timer = setInterval(() => this.tick(Date.now()), tickMs);
    this.timer.unref();
  }

  private tick(now: number): void {
    if (this.open.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    for (const w of [...this.open]) {
      if (w.writing !== undefined) {
        if (now - w.writing.since >= this.options.stallTimeoutMs) {
          this.stalled += 1;
          this.options.logger.warn(
            { method: 'WatchRevocations', peer: w.peer, stalledMs: now - w.writing.since },
            'revocation watcher took nothing for the stall timeout: cut',
          );
          w.cut();
        }
      } else if (now - w.lastSentAt >= this.options.heartbeatMs) {
        w.heartbeat();
      }
    }
  }
}

/** One open watch. */
class Watcher {
  /** The message being written, until its peer took it. */
  writing: { since: number; bytes: number } | undefined;
  lastSentAt = Date.now();
  readonly peer: string;
  private sent: number;
  /** A snapshot: the first message says full_state. */
  private fullState: boolean;
  /** Sent the message that completes the initial state. */
  private synced = false;
  /** Highest sequence published since the watch opened. */
  private head = 0;
  /** Published batches not yet sent, while they are few; dropped (read from the store instead) past that. */
  private hints: (readonly RevocationRecord[])[] = [];
  private hinted = 0;
  /** The peer reads packed pages. */
  private readonly packed: boolean;
  private started = false;
  private running = false;
  private again = false;
  private heartbeatDue = false;
  private closed = false;
  private release: (() => void) | undefined;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly owner: RevocationWatchers,
    private readonly call: RevocationWatch,
    private readonly onClose: () => void,
  ) {
    this.peer = call.getPeer();
    this.sent = Math.max(0, Number(call.request.afterSequence));
    this.fullState = this.sent === 0;
    this.packed = call.request.packed === true;
    this.unsubscribe = owner.options.feed.subscribe((records) => this.published(records));
    const forget = (): void => this.close();
    call.on('cancelled', forget);
    call.on('close', forget);
    call.on('finish', forget);
    call.on('error', forget);
  }

  start(): void {
    void this.checkResume().then(() => {
      this.started = true;
      return this.pump();
    });
  }

  /** A watcher resuming from a sequence this store never handed out holds another store's state: resend all. */
  private async checkResume(): Promise<void> {
    if (this.sent === 0) return;
    try {
      if (this.sent > (await this.owner.options.store.lastRevocationSequence())) {
        this.sent = 0;
        this.fullState = true;
      }
    } catch (e) {
      this.fail(e);
    }
  }

  heartbeat(): void {
    if (this.closed || !this.synced) return;
    this.heartbeatDue = true;
    void this.pump();
  }

  end(): void {
    if (this.closed) return;
    this.close();
    this.call.end();
  }

  /** Drops the stream now, whatever its peer's window holds. */
  cut(): void {
    if (this.closed) return;
    this.close();
    resetServerStream(this.call);
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.hints = [];
    this.writing = undefined;
    this.release?.();
    this.onClose();
  }

  private fail(e: unknown): void {
    if (this.closed) return;
    this.owner.options.logger.warn(
      { method: 'WatchRevocations', peer: this.peer, err: e },
      'revocation watch failed',
    );
    this.close();
    this.call.emit('error', toStatus(e));
  }

  private published(records: readonly RevocationRecord[]): void {
    if (this.closed || records.length === 0) return;
    this.head = Math.max(this.head, records[records.length - 1]!.sequence);
    // References to the published arrays, shared by every watcher; bounded so a stalled peer holds little.
    if (this.hinted + records.length <= this.owner.readRows) {
      this.hints.push(records);
      this.hinted += records.length;
    } else {
      this.hints = [];
      this.hinted = Number.POSITIVE_INFINITY;
    }
    if (this.started) void this.pump();
  }

  /** Sends until the watcher holds everything committed so far, one message at a time. */
  private async pump(): Promise<void> {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        if (!this.synced) {
          await this.catchUp();
        } else if (this.head > this.sent) {
          await this.deliver();
        } else if (this.heartbeatDue) {
          this.heartbeatDue = false;
          await this.write(
            {
              fullState: false,
              revocations: [],
              packedRevocations: NO_BYTES,
              sequence: this.sent,
              synced: true,
            },
            0,
          );
        }
      } while ((this.again || (this.synced && this.head > this.sent)) && !this.closed);
    } catch (e) {
      this.fail(e);
    } finally {
      this.running = false;
    }
  }

  /** Pages the stored state until a read comes back short: the watcher then holds what was committed. */
  private async catchUp(): Promise<void> {
    if (this.packed) return this.catchUpPacked();
    for (;;) {
      if (this.closed) return;
      const rows = await this.owner.options.store.listRevocations(this.sent, this.owner.readRows);
      const done = rows.length < this.owner.readRows;
      if (rows.length === 0) {
        await this.sendPage([], true, this.sent);
      } else {
        await this.sendRows(rows, done);
      }
      if (done) {
        this.synced = true;
        this.dropHintsThrough(this.sent);
        return;
      }
    }
  }

  /** catchUp from the shared chunks, page by page, each written once the previous one was taken. */
  private async catchUpPacked(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      const chunk = await this.owner.snapshotChunk(this.sent);
      if (chunk.pages.length === 0) await this.sendPage([], !chunk.full, this.sent);
      for (let i = 0; i < chunk.pages.length; i++) {
        if (this.closed) return;
        await this.sendPacked(chunk.pages[i]!, !chunk.full && i === chunk.pages.length - 1);
      }
      if (!chunk.full) {
        this.synced = true;
        this.dropHintsThrough(this.sent);
        return;
      }
    }
  }

  /** Live: straight from the published batches when they follow on, else from the store. */
  private async deliver(): Promise<void> {
    const usable = Number.isFinite(this.hinted);
    const hinted = usable ? this.hints.flat().filter((r) => r.sequence > this.sent) : [];
    this.hints = [];
    this.hinted = 0;
    if (hinted.length > 0 && isContiguousFrom(hinted, this.sent)) {
      await this.sendRows(hinted, true);
      return;
    }
    // Behind (its peer was slow, or batches arrived out of order): page from the store up to the head.
    for (;;) {
      if (this.closed) return;
      const rows = await this.owner.options.store.listRevocations(this.sent, this.owner.readRows);
      if (rows.length === 0) {
        // Nothing stored above what was sent (pruned meanwhile): nothing to deliver up to the head.
        this.head = this.sent;
        return;
      }
      await this.sendRows(rows, true);
      if (rows.length < this.owner.readRows) return;
    }
  }

  private dropHintsThrough(sequence: number): void {
    if (!Number.isFinite(this.hinted)) {
      this.hints = [];
      this.hinted = 0;
      return;
    }
    this.hints = this.hints.filter((batch) => batch[batch.length - 1]!.sequence > sequence);
    this.hinted = this.hints.reduce((n, b) => n + b.length, 0);
  }

  /** Splits rows into pages of at most pageBytes; the last page carries `synced` when `last`. */
  private async sendRows(rows: readonly RevocationRecord[], last: boolean): Promise<void> {
    const fresh = rows.filter((r) => r.sequence > this.sent);
    if (fresh.length === 0) {
      if (last && !this.synced) await this.sendPage([], true, this.sent);
      return;
    }
    if (this.packed) {
      const pages = packPages(fresh, this.owner.pageBytes);
      for (let i = 0; i < pages.length; i++) {
        if (this.closed) return;
        await this.sendPacked(pages[i]!, last && i === pages.length - 1);
      }
      return;
    }
    let page: RevocationRecord[] = [];
    let bytes = 0;
    for (const r of fresh) {
      const size = encodedSize(r);
      if (page.length > 0 && bytes + size > this.owner.pageBytes) {
        await this.sendPage(page, false, page[page.length - 1]!.sequence);
        if (this.closed) return;
        page = [];
        bytes = 0;
      }
      page.push(r);
      bytes += size;
    }
    await this.sendPage(page, last, page[page.length - 1]!.sequence);
  }

  private sendPage(records: readonly RevocationRecord[], synced: boolean, sequence: number): Promise<void> {
    const message: WatchRevocationsResponse = {
      fullState: this.fullState,
      revocations: records.map(revocationToProto),
      packedRevocations: NO_BYTES,
      sequence,
      synced: synced || this.synced,
    };
    this.fullState = false;
    this.sent = Math.max(this.sent, sequence);
    return this.write(
      message,
      records.reduce((n, r) => n + encodedSize(r), 0),
    );
  }

  private sendPacked(page: PackedPage, synced: boolean): Promise<void> {
    const message: WatchRevocationsResponse = {
      fullState: this.fullState,
      revocations: [],
      packedRevocations: page.bytes,
      sequence: page.sequence,
      synced: synced || this.synced,
    };
    this.fullState = false;
    this.sent = Math.max(this.sent, page.sequence);
    return this.write(message, page.bytes.length);
  }

  /** Resolves once the HTTP/2 layer took the message, or the watch closed. */
  private write(message: WatchRevocationsResponse, bytes: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.lastSentAt = Date.now();
    this.writing = { since: this.lastSentAt, bytes };
    return new Promise((resolve) => {
      this.release = resolve;
      this.call.write(message, () => {
        this.release = undefined;
        this.writing = undefined;
        this.lastSentAt = Date.now();
        resolve();
      });
    });
  }
}

/** Whether `rows` are exactly the sequences after `sent`, without a gap (else the store is read instead). */
function isContiguousFrom(rows: readonly RevocationRecord[], sent: number): boolean {
  return rows.every((r, i) => r.sequence === sent + 1 + i);
}

/**
 * An upper bound of a revocation's protobuf size: the two strings plus the fixed fields (two varint sequences,
 * two timestamps, the kind) and framing.
 */
function encodedSize(r: RevocationRecord): number {
  return 96 + Buffer.byteLength(r.id) + Buffer.byteLength(r.reason);
}

function count(map: Map<string, number>, key: string, delta: number): void {
  const n = (map.get(key) ?? 0) + delta;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}
