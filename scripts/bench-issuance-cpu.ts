/**
 * Where a bench phase's CPU went, by thread of this process (Linux): the server's thread (the main thread), the
 * client threads (each reports its own id), and every other thread (signing workers, the WAL checkpoint worker,
 * libuv's pool, V8's GC helpers). Read from /proc/self/task/<tid>/schedstat, the scheduler's own nanoseconds on a
 * CPU, so no profiler has to run. Elsewhere the snapshots are empty and nothing is printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';

/** Nanoseconds on a CPU so far, by thread id, for every thread of this process. */
export type ThreadCpu = Record<string, number>;

export function threadCpuNs(): ThreadCpu {
  const out: ThreadCpu = {};
  let tids: string[];
  try {
    tids = fs.readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const first = fs.readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ')[0];
      const ns = Number(first);
      if (Number.isFinite(ns)) out[tid] = ns;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** This thread's id as the kernel names it (the main thread's is the process id), or undefined off Linux. */
export function ownThreadId(): string | undefined {
  try {
    return fs.readlinkSync('/proc/thread-self').split('/').pop();
  } catch {
    return undefined;
  }
}

export interface PhaseCpu {
  start: ThreadCpu;
  end: ThreadCpu;
  /** The client threads' ids. */
  clients: string[];
}

export interface CpuSplit {
  /** µs of CPU per call. */
  server: number;
  clients: number;
  others: number;
  total: number;
  /** The busiest other threads: µs per call each, and the thread id's offset from the process id. */
  topOthers: { us: number; tidOffset: number }[];
}

export function splitCpu(cpu: PhaseCpu, calls: number, serverTid = String(process.pid)): CpuSplit {
  const per = (ns: number): number => ns / 1000 / Math.max(1, calls);
  let server = 0;
  let clients = 0;
  const others: { ns: number; tid: string }[] = [];
  for (const [tid, end] of Object.entries(cpu.end)) {
    // A thread started during the phase counts from zero.
    const d = end - (cpu.start[tid] ?? 0);
    if (tid === serverTid) server += d;
    else if (cpu.clients.includes(tid)) clients += d;
    else others.push({ ns: d, tid });
  }
  others.sort((a, b) => b.ns - a.ns);
  const otherSum = others.reduce((a, b) => a + b.ns, 0);
  return {
    server: per(server),
    clients: per(clients),
    others: per(otherSum),
    total: per(server + clients + otherSum),
    topOthers: others
      .slice(0, 4)
      .map((o) => ({ us: per(o.ns), tidOffset: Number(o.tid) - Number(serverTid) })),
  };
}

/** The syscalls counted over a phase by `perf stat` (per thread), when --renew-perf names an output file. */
export const PERF_EVENTS = [
  'raw_syscalls:sys_enter',
  ...[
    'pwrite64',
    'pread64',
    'fdatasync',
    'fsync',
    'write',
    'writev',
    'read',
    'futex',
    'epoll_wait',
    'epoll_pwait',
    'madvise',
    'mmap',
    'munmap',
    'mprotect',
    'getrandom',
    'fcntl',
    'lseek',
    'newfstatat',
    'ioctl',
  ].map((s) => `syscalls:sys_enter_${s}`),
];

/**
 * Starts `perf stat` (syscall counts by thread) or `perf record` (on-CPU samples, every thread: native frames
 * such as postMessage's serialiser are named, JIT-compiled JavaScript is not) on this process; resolves once it
 * is counting (it says nothing when it is, so a pause).
 */
export async function startPerf(file: string, mode: 'stat' | 'record' = 'stat'): Promise<ChildProcess> {
  const pid = String(process.pid);
  const args =
    mode === 'stat'
      ? ['stat', '--per-thread', '-x', ',', '-e', PERF_EVENTS.join(','), '-p', pid, '-o', file]
      : ['record', '-e', 'cpu-clock', '-F', '999', '-g', '-p', pid, '-o', file];
  const child = spawn('perf', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await new Promise((r) => setTimeout(r, 500));
  return child;
}

export function stopPerf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGINT');
  });
}
