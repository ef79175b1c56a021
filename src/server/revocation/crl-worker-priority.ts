/**
 * Imported first by crl-build-worker.ts, for its side effect: the build thread lowers its priority before the
 * rest of its modules load (the SQLite binding, the X.509 and CRL code), so even its start-up yields to the
 * server's thread. Module loading is the thread's first CPU burst, at the moment the first build starts.
 */
import { workerData } from 'node:worker_threads';
import type { CrlWorkerData } from './crl-build-protocol';
import { lowerThreadPriority } from './thread-priority';

const data = (workerData ?? {}) as CrlWorkerData;
lowerThreadPriority(data.niceness ?? 0, { idle: data.idle === true, sliceMs: data.sliceMs ?? 0 });
