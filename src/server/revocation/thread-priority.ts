/**
 * A worker thread lowering its own scheduling priority. On Linux a nice value and a scheduling policy are a
 * thread's own, so a background thread (the CRL build) can yield the CPU to the server's thread on a machine with
 * fewer free cores than busy threads, without touching the rest of the process.
 *
 * Two steps. SCHED_IDLE, through the project's N-API addon (native/peercred, `idleThisThread`): the thread runs
 * only on a CPU no other thread wants, and a thread that wakes (the server's, when a call's bytes or an fsync's
 * completion arrive) takes the CPU from it at once. A nice value alone does not promise that: the scheduler
 * (EEVDF) lets a picked nice-10 thread run out its slice, a few milliseconds, before a woken thread gets its
 * CPU, at every wake-up of the server's thread while both cores are busy. Then the nice value, with Node's
 * `os.setPriority` on the thread's id: the whole priority where the addon is not built or the policy was refused,
 * and harmless beside SCHED_IDLE. Elsewhere (not Linux) nothing changes.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import path from 'node:path';

export interface LoweredPriority {
  /** The thread now runs under SCHED_IDLE. */
  idle: boolean;
  /** Its nice value was raised to the one asked for. */
  niced: boolean;
}

interface SchedAddon {
  idleThisThread(): boolean;
}

/** The addon node-gyp builds at `npm ci` (build/Release under the package root), when it is there. */
function schedAddon(): SchedAddon | undefined {
  // src/server/revocation or dist/server/revocation: the package root is three folders up.
  const file = path.join(path.resolve(__dirname, '..', '..', '..'), 'build', 'Release', 'peercred.node');
  if (!existsSync(file)) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(file) as Partial<SchedAddon>;
    // An addon built from an older checkout lacks the call.
    return typeof addon.idleThisThread === 'function' ? (addon as SchedAddon) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lowers the calling thread's priority: SCHED_IDLE when `idle` and the addon can, and the nice value `niceness`
 * (a higher value is a lower priority; raising it needs no privilege, and a thread already niced further stays
 * so). Never fails: what could not be set costs the caller only its priority.
 */
export function lowerThreadPriority(niceness: number, options: { idle?: boolean } = {}): LoweredPriority {
  const lowered: LoweredPriority = { idle: false, niced: false };
  if (process.platform !== 'linux') return lowered;
  let tid: number;
  try {
    // "<pid>/task/<tid>": the Linux thread id of the caller.
    tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return lowered;
  }
  // Never the process's main thread: the server's own thread keeps its priority.
  if (!Number.isInteger(tid) || tid <= 0 || tid === process.pid) return lowered;
  if (options.idle === true) {
    try {
      lowered.idle = schedAddon()?.idleThisThread() ?? false;
    } catch {
      lowered.idle = false;
    }
  }
  if (niceness > 0) {
    try {
      const wanted = Math.min(19, Math.floor(niceness));
      if (getPriority(tid) < wanted) {
        setPriority(tid, wanted);
        lowered.niced = true;
      }
    } catch {
      lowered.niced = false;
    }
  }
  return lowered;
}
