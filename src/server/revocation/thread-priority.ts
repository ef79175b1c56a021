/**
 * A worker thread lowering its own scheduling priority. On Linux the nice value is a thread's own (setpriority
 * with the thread's id), so a background thread (the CRL build) can yield the CPU to the server's thread on a
 * machine with fewer free cores than busy threads, without touching the rest of the process. Elsewhere the
 * thread's id cannot be had, and nothing changes.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * Sets the calling thread's nice value to `niceness` (a higher value is a lower priority; raising it needs no
 * privilege). Returns whether it was set: false where the thread's id is not known (not Linux) or the call was
 * refused, which costs the caller only its priority.
 */
export function lowerThreadPriority(niceness: number): boolean {
  if (niceness <= 0) return false;
  let tid: number;
  try {
    // "<pid>/task/<tid>": the Linux thread id of the caller.
    tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return false;
  }
  if (!Number.isInteger(tid) || tid <= 0 || tid === process.pid) return false;
  try {
    const wanted = Math.min(19, Math.floor(niceness));
    // Never a higher priority than the thread has (a process already niced further stays so).
    if (getPriority(tid) >= wanted) return false;
    setPriority(tid, wanted);
    return true;
  } catch {
    return false;
  }
}
