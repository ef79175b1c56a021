/**
 * The revocation side of one server without its listeners: a data dir with the real SQLite store and CA, the
 * revocation feed, and the CRL publishers a test makes on them, for the CRL and revocation-state tests. A hook
 * pair as `usePostgresDatabase`: each test gets a fresh data dir, and after it the publishers it made are stopped
 * (`beforeStop` first), then the store and CA closed and the dir removed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CaManager } from '../../src/ca';
import { CrlPublisher, type CrlPublisherOptions } from '../../src/server/revocation/crl-publisher';
import { RevocationFeed } from '../../src/server/sessions/revocation-feed';
import type { SqliteStore } from '../../src/store';
import type { NewSession } from '../../src/store/types';
import { WATCH_DEFAULTS } from '../../src/server/sessions/watch-revocations';
import { type RevocationCache, verifyX509Svid } from '../../src/verify';
import { readChildren, readSingleTlv } from '../../src/x509/der';
import { DataDir } from './ca';
import type { TestServer } from './test-server';

/** A stored revocation state of three full snapshot chunks, then a partial one (never kept: each watcher reads it). */
export const FULL_STATE_CHUNKS = 3;
export const CHUNKED_STATE_REVOCATIONS = FULL_STATE_CHUNKS * WATCH_DEFAULTS.snapshotRows + 1000;

/** The code a verification of `chain` under the server's bundle with `cache` refuses with, or undefined. */
export function revocationRefusal(
  chain: Uint8Array[],
  s: TestServer,
  cache: RevocationCache,
): string | undefined {
  try {
    verifyX509Svid(chain, s.running.ca.bundle(), { revocation: cache });
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

export interface RevocationFixture {
  readonly dir: string;
  readonly dataDir: DataDir;
  readonly store: SqliteStore;
  readonly ca: CaManager;
  readonly feed: RevocationFeed;
  /** The fixture clock's now plus `seconds`. */
  later(seconds: number): Date;
  /** Revokes a certificate serial through the store and tells the feed, as RevokeSvid does. */
  revoke(serialHex: string, expiresInSeconds?: number, at?: Date): Promise<void>;
  /**
   * `count` certificate revocations in one transaction (serials derived from `from` onwards), not told to the
   * feed: bulk state that a CRL build or a state read finds in the store.
   */
  seed(count: number, from?: number): Promise<void>;
  /** A session row (expiring 500 s from now) to hang certificates on and end. */
  session(id: string): NewSession;
  /**
   * A CrlPublisher on the fixture (validity 300 s, refresh 60 s, no spacing between builds unless `more` says
   * otherwise), started; stopped after the test.
   */
  publisher(more?: Partial<CrlPublisherOptions>): CrlPublisher;
}

/**
 * Registers the suite's hooks; call it inside `describe` before the suite's own hooks. `prefix` names the temp
 * dirs; `beforeStop` runs after each test before anything is closed (whatever holds the store lets go there).
 */
export function useRevocationFixture(
  prefix: string,
  options: { beforeStop?: () => Promise<void> | void } = {},
): RevocationFixture {
  let current:
    { dir: string; dataDir: DataDir; store: SqliteStore; ca: CaManager; feed: RevocationFeed } | undefined;
  const publishers: CrlPublisher[] = [];
  const now = (): {
    dir: string;
    dataDir: DataDir;
    store: SqliteStore;
    ca: CaManager;
    feed: RevocationFeed;
  } => {
    if (current === undefined) throw new Error('no revocation fixture outside a test');
    return current;
  };

  beforeEach(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
    const dataDir = new DataDir(dir);
    const { store, ca } = await dataDir.start();
    current = { dir, dataDir, store, ca, feed: new RevocationFeed() };
  });
  afterEach(async () => {
    const c = current;
    current = undefined;
    try {
      await options.beforeStop?.();
      for (const p of publishers.splice(0)) await p.stop();
    } finally {
      if (c !== undefined) {
        await c.dataDir.stop();
        fs.rmSync(c.dir, { recursive: true, force: true });
      }
    }
  });

  const later = (seconds: number): Date => new Date(now().dataDir.clock.now.getTime() + seconds * 1000);
  return {
    get dir() {
      return now().dir;
    },
    get dataDir() {
      return now().dataDir;
    },
    get store() {
      return now().store;
    },
    get ca() {
      return now().ca;
    },
    get feed() {
      return now().feed;
    },
    later,
    async revoke(serialHex, expiresInSeconds = 200, at) {
      const { store, feed, dataDir } = now();
      const r = await store.addRevocation(
        { kind: 'certificate', id: serialHex, reason: '', expiresAt: later(expiresInSeconds) },
        at ?? dataDir.clock.now,
      );
      feed.publish([r]);
    },
    async seed(count, from = 0) {
      const { store, dataDir } = now();
      await store.transaction(async (tx) => {
        for (let i = from; i < from + count; i++) {
          const serial = (0x4000_0000_0000 + i * 7919).toString(16);
          await tx.addRevocation(
            { kind: 'certificate', id: serial, reason: '', expiresAt: later(3000) },
            dataDir.clock.now,
          );
        }
      });
    },
    session(id) {
      return {
        id,
        entryId: 'e',
        spiffeId: 'spiffe://example.org/a',
        rootSessionId: id,
        principal: { id: 'p', issuer: 'i', provenance: 'workload' },
        intent: '',
        scopes: [],
        depth: 0,
        depthLimit: 0,
        expiresAt: later(500),
      };
    },
    publisher(more = {}) {
      const { store, ca, feed, dataDir } = now();
      const p = new CrlPublisher({
        store,
        ca,
        feed,
        clock: dataDir.clock.read,
        logger: dataDir.log.logger,
        validitySeconds: 300,
        refreshSeconds: 60,
        minRebuildMs: 0,
        ...more,
      });
      p.start();
      publishers.push(p);
      return p;
    },
  };
}

/**
 * The serials a CRL lists, lower-case hex without leading zeros, in the CRL's order. Read with the DER reader:
 * the ASN.1 schema parser caps its node count, below what a CRL of tens of thousands of entries holds.
 */
export function crlSerials(der: Uint8Array): string[] {
  const tbs = readChildren(der, readSingleTlv(der))[0]!;
  // version, signature, issuer, thisUpdate, nextUpdate, then revokedCertificates when there are any.
  const list = readChildren(der, tbs)[5];
  if (list === undefined || list.tag !== 0x30) return [];
  return readChildren(der, list).map((entry) => {
    const serial = readChildren(der, entry)[0]!;
    return Buffer.from(der.subarray(serial.contentStart, serial.end)).toString('hex').replace(/^0+/, '');
  });
}
