/**
 * A worker thread lowering its own scheduling priority. On Linux a nice value, a scheduling policy and a time
 * slice are a thread's own, so a background thread (the CRL build) can yield the CPU to the server's thread on a
 * machine with fewer free cores than busy threads, without touching the rest of the process.
 *
 * The nice value (Node's `os.setPriority` on the thread's id) gives the thread a smaller share of a busy CPU;
 * that is what the CRL build uses. Two more calls, through the project's N-API addon (native/peercred), are
 * options measured against it (docs/design/performance-log.md, "EndSession while the first 1M CRL is built,
 * again"), off by default:
 * - a long time slice (sched_setattr, `longSliceThisThread`): under EEVDF (Linux >= 6.12) a woken thread with a
 *   shorter slice preempts the busy one instead of waiting for its protected slice, and the share stays the nice
 *   value's. On the 2-core host (6.18, no kernel preemption) a woken thread sharing a CPU with a busy one waited
 *   the same, p50 1–3 ms, whatever the busy one's nice value, slice or policy;
 * - SCHED_IDLE (`idleThisThread`): the thread runs only on a CPU nothing else wants. On a busy host that starves
 *   the build, and while starved it holds SQLite's and the process's locks that the server's thread then waits
 *   for (a 6.5 s stall of the server's loop, measured).
 * Without the addon, on an older kernel or elsewhere than Linux, what cannot be set is skipped.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import path from 'node:path';

export interface LoweredPriority {
  /** The thread now runs under SCHED_IDLE. */
  idle: boolean;
  /** Its nice value was raised to the one asked for. */
  niced: boolean;
  /** The kernel took the long time slice asked for. */
  longSlice: boolean;
}

interface SchedAddon {
  idleThisThread(): boolean;
  longSliceThisThread(ms: number): boolean;
}

/** The addon node-gyp builds at `npm ci` (build/Release under the package root), when it is there. */
function schedAddon(): SchedAddon | undefined {
  // src/server/revocation or dist/server/revocation: the package root is three folders up.
  const file = path.join(path.resolve(__dirname, '..', '..', '..'), 'build', 'Release', 'peercred.node');
  if (!existsSync(file)) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const addon = require(file) as Partial<SchedAddon>;
    // An addon built from an older checkout lacks the calls.
    return typeof addon.idleThisThread === 'function' && typeof addon.longSliceThisThread === 'function'
      ? (addon as SchedAddon)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lowers the calling thread's priority: the nice value `niceness` (a higher value is a lower priority; raising
 * it needs no privilege, and a thread already niced further stays so), then a time slice of `sliceMs` when
 * given, or SCHED_IDLE instead when `idle`, where the addon can. Never fails: what could not be set costs the
 * caller only its priority.
 */
export function lowerThreadPriority(
  niceness: number,
  options: { idle?: boolean; sliceMs?: number } = {},
): LoweredPriority {
  const lowered: LoweredPriority = { idle: false, niced: false, longSlice: false };
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
  // After the nice value: sched_setattr keeps the thread's nice value as it is then.
  try {
    if (options.idle === true) lowered.idle = schedAddon()?.idleThisThread() ?? false;
    else if (options.sliceMs !== undefined && options.sliceMs > 0)
      lowered.longSlice = schedAddon()?.longSliceThisThread(Math.floor(options.sliceMs)) ?? false;
  } catch {
    // The addon's own failure: the nice value alone.
  }
  return lowered;
}
