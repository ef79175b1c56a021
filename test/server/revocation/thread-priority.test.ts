/**
 * The CRL build thread's priority (thread-priority.ts, crl-worker-priority.ts): on Linux with the project's addon
 * built, asked for a long time slice the build thread, and only it, gets it at its nice value under SCHED_OTHER;
 * asked for SCHED_IDLE, it runs under it; by default neither (nice 10 alone); the server's own thread keeps its
 * policy, nice value and slice whatever it calls. Real store, CA and worker thread. Read from /proc: the
 * policy is the 39th field of a thread's stat after its name (5 SCHED_IDLE, 0 SCHED_OTHER), the slice is
 * `se.slice` in its sched file (ns; kernels with EEVDF). No timing is asserted.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CRL_WORKER_DEFAULTS, WorkerCrlBuilder } from '../../../src/server/revocation/crl-builder';
import { lowerThreadPriority } from '../../../src/server/revocation/thread-priority';
import { crlSerials, useRevocationFixture } from '../../support/revocations';

const SCHED_IDLE = 5;
const ADDON = path.join(__dirname, '..', '..', '..', 'build', 'Release', 'peercred.node');

/** A thread of this process: its nice value and scheduling policy, from /proc. */
function sched(tid: string): { nice: number; policy: number } {
  const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  // After the command name (in parentheses): state is the 1st field, nice the 17th, policy the 39th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { nice: Number(fields[16]), policy: Number(fields[38]) };
}

/** A thread's time slice in ns (EEVDF's `se.slice`); undefined where the kernel does not show one. */
function sliceNs(tid: string): number | undefined {
  try {
    const m = /^se\.slice\s*:\s*(\d+)/m.exec(fs.readFileSync(`/proc/self/task/${tid}/sched`, 'utf8'));
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/** Whether this kernel takes a fair thread's slice from sched_setattr (Linux >= 6.12). */
function kernelTakesSlices(): boolean {
  const [major, minor] = fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').split('.').map(Number);
  return major! > 6 || (major === 6 && minor! >= 12);
}

const SLICE_MS = 10;
const wantedSliceNs = SLICE_MS * 1e6;
const longSliced = (): string[] =>
  fs.readdirSync('/proc/self/task').filter((t) => sliceNs(t) === wantedSliceNs);

const idleThreads = (): string[] =>
  fs.readdirSync('/proc/self/task').filter((t) => {
    try {
      return sched(t).policy === SCHED_IDLE;
    } catch {
      return false; // the thread ended meanwhile
    }
  });

describe('CRL build thread priority', function () {
  this.timeout(60_000);
  const f = useRevocationFixture('lanyard-crl-priority');
  const { later, revoke } = f;

  before(function () {
    if (process.platform !== 'linux' || !fs.existsSync(ADDON)) this.skip();
  });

  it('asked for, the build thread, and only it, gets the long slice at nice 10, under SCHED_OTHER', async function () {
    const mainTid = String(process.pid);
    if (!kernelTakesSlices() || sliceNs(mainTid) === undefined || sliceNs(mainTid) === wantedSliceNs)
      this.skip();
    const main = { ...sched(mainTid), slice: sliceNs(mainTid) };
    const before = longSliced();
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
      sliceMs: SLICE_MS,
    });
    try {
      await revoke('c3');
      const built = await worker.build({
        full: true,
        after: 0,
        header: { crlNumber: 3n, thisUpdate: f.dataDir.clock.now, nextUpdate: later(300) },
        signers: f.ca.crlSigners(),
      });
      assert.deepEqual(crlSerials(built.crls[0]!.der), ['c3']);
      const added = longSliced().filter((t) => !before.includes(t));
      assert.equal(added.length, 1, 'the build thread, and only it, with the long slice');
      assert.notEqual(added[0], mainTid);
      assert.deepEqual(sched(added[0]!), { nice: CRL_WORKER_DEFAULTS.niceness, policy: 0 });
      assert.deepEqual(
        { ...sched(mainTid), slice: sliceNs(mainTid) },
        main,
        "the server's thread is unchanged",
      );
    } finally {
      await worker.close();
    }
  });

  it('with idle asked for, the build thread, and only it, runs under SCHED_IDLE', async function () {
    const main = sched(String(process.pid));
    if (main.policy === SCHED_IDLE) this.skip();
    const before = idleThreads();
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
      idle: true,
    });
    try {
      await revoke('a1');
      const built = await worker.build({
        full: true,
        after: 0,
        header: { crlNumber: 1n, thisUpdate: f.dataDir.clock.now, nextUpdate: later(300) },
        signers: f.ca.crlSigners(),
      });
      // The CRL is the same whatever the priority: the revoked serial is listed.
      assert.deepEqual(crlSerials(built.crls[0]!.der), ['a1']);
      const added = idleThreads().filter((t) => !before.includes(t));
      assert.equal(added.length, 1, 'the build thread, and only it, under SCHED_IDLE');
      assert.notEqual(added[0], String(process.pid));
      assert.equal(sched(added[0]!).nice, CRL_WORKER_DEFAULTS.niceness, 'the nice value is kept beside it');
      assert.deepEqual(
        sched(String(process.pid)),
        main,
        "the server's thread keeps its policy and nice value",
      );
    } finally {
      await worker.close();
    }
  });

  it('by default the build thread is at nice 10 alone: not under SCHED_IDLE (it would starve on a busy host)', async () => {
    const before = idleThreads();
    const sliced = longSliced();
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
    });
    try {
      await revoke('b2');
      await worker.build({
        full: true,
        after: 0,
        header: { crlNumber: 2n, thisUpdate: f.dataDir.clock.now, nextUpdate: later(300) },
        signers: f.ca.crlSigners(),
      });
      assert.deepEqual(
        idleThreads().filter((t) => !before.includes(t)),
        [],
      );
      assert.deepEqual(
        longSliced().filter((t) => !sliced.includes(t)),
        [],
      );
    } finally {
      await worker.close();
    }
  });

  it("called on the server's own thread, it changes nothing", () => {
    const main = sched(String(process.pid));
    assert.deepEqual(lowerThreadPriority(15, { idle: true }), {
      idle: false,
      niced: false,
      longSlice: false,
    });
    assert.deepEqual(lowerThreadPriority(15, { sliceMs: 50 }), {
      idle: false,
      niced: false,
      longSlice: false,
    });
    assert.deepEqual(sched(String(process.pid)), main);
  });
});
