/**
 * The CRL build thread's priority (thread-priority.ts, crl-worker-priority.ts): on Linux with the project's addon
 * built, the build thread, and only it, runs under SCHED_IDLE, so a server thread that wakes takes the CPU from
 * it at once; the server's own thread keeps its policy and nice value whatever it calls. Real store, CA and
 * worker thread. The policy is read from /proc (the 39th field of a thread's stat after its name: 5 is
 * SCHED_IDLE, 0 SCHED_OTHER); no timing is asserted.
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

  it('the build thread, and only it, runs under SCHED_IDLE; the server thread keeps its policy', async function () {
    const main = sched(String(process.pid));
    if (main.policy === SCHED_IDLE) this.skip();
    const before = idleThreads();
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
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

  it('with idle off the build thread stays SCHED_OTHER at the nice value (the fallback)', async () => {
    const before = idleThreads();
    const worker = new WorkerCrlBuilder(f.store, {
      sqliteFile: f.store.file,
      durable: () => f.store.durableBarrier(),
      idle: false,
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
    } finally {
      await worker.close();
    }
  });

  it("called on the server's own thread, it changes nothing", () => {
    const main = sched(String(process.pid));
    assert.deepEqual(lowerThreadPriority(15, { idle: true }), { idle: false, niced: false });
    assert.deepEqual(sched(String(process.pid)), main);
  });
});
