/**
 * The CRL build worker reads the SQLite file on its own connection, which sees a commit as soon as it is
 * written, before its WAL fsync. A CRL must not be handed over (and so published) until what the worker read is
 * durable: a CRL listing a revocation that a power loss takes back would be signed evidence of something the
 * store no longer holds. The store's `fsync` option wraps the real fsync so the test can hold it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CaManager, DiskKeyManager } from '../../src/ca';
import { InternalError } from '../../src/errors';
import { WorkerCrlBuilder, type CrlBuildRequest } from '../../src/server/revocation/crl-builder';
import { SQLITE_FILE_NAME, SqliteStore } from '../../src/store';
import { fsyncOnThreadpool, type FsyncHook } from '../../src/store/sqlite/wal-fsync';
import { captureLog, TD } from '../support/ca';
import { FsyncGate, settled } from '../support/fsync-gate';
import { crlSerials } from '../support/revocations';

describe('CRL build worker: nothing published before it is durable', function () {
  this.timeout(60_000);
  let dir: string;
  let store: SqliteStore;
  let ca: CaManager;
  let gate: FsyncGate;
  /** Every fsync passes until a test switches to the gate. */
  let fsync: FsyncHook;
  const builders: WorkerCrlBuilder[] = [];
  let crlNumber = 1n;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-crl-durable-'));
    gate = new FsyncGate();
    fsync = fsyncOnThreadpool;
    store = await SqliteStore.open({ file: path.join(dir, SQLITE_FILE_NAME), fsync: (fd) => fsync(fd) });
    ca = await CaManager.open({
      trustDomain: TD,
      store,
      keyManager: DiskKeyManager.inDataDir(dir),
      caTtlSeconds: 600,
      logger: captureLog().logger,
    });
  });
  afterEach(async () => {
    for (const b of builders.splice(0)) await b.close();
    gate.stopHolding();
    await ca.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const request = (full: boolean, after: number): CrlBuildRequest => {
    const thisUpdate = new Date();
    return {
      full,
      after,
      header: { crlNumber: crlNumber++, thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + 300_000) },
      signers: ca.crlSigners(),
    };
  };
  const builder = (durable: () => Promise<void>): WorkerCrlBuilder => {
    const b = new WorkerCrlBuilder(store, { sqliteFile: store.file, durable });
    builders.push(b);
    return b;
  };
  const revoke = (serialHex: string): Promise<unknown> =>
    store.addRevocation(
      { kind: 'certificate', id: serialHex, reason: 'leaked', expiresAt: new Date(Date.now() + 3_600_000) },
      new Date(),
    );

  it('hands over a CRL that lists a revocation only once the revocation is on disk', async () => {
    let replied = false;
    const guarded = builder(() => {
      replied = true;
      return store.durableBarrier();
    });
    const first = await guarded.build(request(true, 0));
    assert.deepEqual(crlSerials(first.crls[0]!.der), []);

    fsync = gate.hook;
    const revoked = revoke('abc123');
    await gate.waitForStarts(1);
    // Without the barrier a worker's connection already lists the revocation whose fsync is held.
    const unguarded = builder(() => Promise.resolve());
    const early = await unguarded.build(request(true, 0));
    assert.deepEqual(crlSerials(early.crls[0]!.der), ['abc123']);
    assert.equal(await settled(revoked), false);

    replied = false;
    const built = guarded.build(request(false, first.throughSequence));
    // Until the worker replied (the barrier is asked for), or the build was handed over without asking.
    while (!replied && !(await settled(built))) await new Promise((r) => setTimeout(r, 5));
    assert.equal(await settled(built), false, 'handed over a CRL listing a revocation that is not durable');
    gate.release();
    await revoked;
    assert.deepEqual(crlSerials((await built).crls[0]!.der), ['abc123']);
  });

  it('a failed durability barrier fails the build: no CRL', async () => {
    const failing = builder(() => Promise.reject(new InternalError('the store failed closed')));
    await assert.rejects(failing.build(request(true, 0)), /failed closed/);
  });

  it('refuses to read SQLite without the barrier', () => {
    assert.throws(() => new WorkerCrlBuilder(store, { sqliteFile: store.file }), InternalError);
  });
});
