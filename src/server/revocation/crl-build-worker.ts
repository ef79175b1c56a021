/**
 * The CRL build thread: keeps the CRL's revoked list between builds (revoked-list.ts), reads the revocations
 * committed since the last build on a read-only SQLite connection of its own (or applies the delta the server's
 * thread read from PostgreSQL), and signs each CA's CRL with the key handle the build message brought. So the
 * reading of a million rows, the encoding, the copies of a list of tens of megabytes, the hash under the
 * signature and the garbage collection over a million-entry heap all happen off the server's thread.
 *
 * Keys: a build's signers (KeyObject handles, never bytes) are used for that build and dropped. Nothing here
 * logs; a failure is answered with a typed error's code and message, or an untyped one's class name and message.
 */
// First: the thread lowers its priority before the modules below load (crl-worker-priority.ts).
import './crl-worker-priority';
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { isLanyardError } from '../../errors';
import { SqliteSessions } from '../../store/sqlite/sessions';
import { ParsedCertificate } from '../../x509/certificate';
import type { CrlBuildMessage, CrlWorkerData, CrlWorkerReply, CrlWorkerRequest } from './crl-build-protocol';
import { applyAndSign, RevokedList, type RevokedColumns } from './revoked-list';

const port = parentPort;
if (port === null) throw new Error('crl-build-worker runs only as a worker thread');
const data = (workerData ?? {}) as CrlWorkerData;
const list = new RevokedList();
/** The list holds a complete read: an incremental build may extend it. */
let primed = false;
let sessions: SqliteSessions | undefined;

port.on('message', (m: CrlWorkerRequest) => {
  port.postMessage({ type: 'started', id: m.id } satisfies CrlWorkerReply);
  const started = performance.now();
  try {
    // Shared memory, not transferred: no new external memory for the server's thread to collect on.
    port.postMessage(build(m, started));
  } catch (e) {
    port.postMessage(failure(m.id, e));
  }
});

function build(m: CrlBuildMessage, started: number): CrlWorkerReply & { type: 'built' } {
  if (!m.full && !primed) throw new Error('an incremental CRL build reached a worker without a list');
  const thisUpdate = new Date(m.thisUpdateMs);
  let deltas: Iterable<RevokedColumns>;
  let throughSequence: number;
  const reads = { count: 0 };
  if (m.delta !== undefined) {
    deltas = [m.delta];
    throughSequence = m.delta.throughSequence;
  } else {
    const read = readDeltas(m.full ? 0 : m.after, thisUpdate, reads);
    deltas = read.deltas;
    throughSequence = read.throughSequence;
  }
  const signers = m.signers.map((s) => ({
    authorityId: s.authorityId,
    cert: ParsedCertificate.fromDer(s.certDer),
    key: s.key,
  }));
  // A list half-updated by a failed read must not be extended later.
  primed = false;
  const { crls, added } = applyAndSign(
    list,
    {
      full: m.full,
      header: { crlNumber: m.crlNumber, thisUpdate, nextUpdate: new Date(m.nextUpdateMs) },
      deltas,
    },
    signers,
  );
  primed = true;
  const { buffer, index, offsets } = intoBuffer(
    m.buffers,
    crls.map((c) => c.der),
  );
  return {
    type: 'built',
    id: m.id,
    bufferIndex: index,
    ...(index < 0 && { buffer }),
    crls: crls.map((c, i) => ({ authorityId: c.authorityId, offset: offsets[i]!, length: c.der.byteLength })),
    revokedCount: list.size,
    added,
    reads: reads.count,
    throughSequence,
    full: m.full,
    durationMs: performance.now() - started,
  };
}

/**
 * `ders` copied one after another into the first of `offered` large enough, else into a new buffer with an
 * eighth to spare (so a list that grows slowly does not need a new one at every build).
 */
function intoBuffer(
  offered: readonly SharedArrayBuffer[],
  ders: readonly Uint8Array[],
): { buffer: SharedArrayBuffer; index: number; offsets: number[] } {
  const total = ders.reduce((n, d) => n + d.byteLength, 0);
  const index = offered.findIndex((b) => b.byteLength >= total);
  const buffer = offered[index] ?? new SharedArrayBuffer(Math.max(1, total + (total >> 3)));
  let at = 0;
  const offsets = ders.map((d) => {
    new Uint8Array(buffer, at, d.byteLength).set(d);
    at += d.byteLength;
    return at - d.byteLength;
  });
  return { buffer, index, offsets };
}

/**
 * The revocations after `after` on this thread's own read-only connection, as a run of bounded reads of
 * `readChunk` sequences each, read lazily as the list takes them. The last sequence committed is read first;
 * each read is one statement (its own read transaction) over a range below it, so the rows are exactly those
 * of the revocations up to it: one committed meanwhile has a higher sequence (SQLite has one writer) and is in
 * the next build's delta. No read transaction lasts the whole build, so the server's commits can checkpoint the
 * WAL between reads rather than let it grow until the build ends.
 */
function readDeltas(
  after: number,
  now: Date,
  reads: { count: number },
): { deltas: Iterable<RevokedColumns>; throughSequence: number } {
  if (data.sqliteFile === undefined) throw new Error('the CRL worker has no store to read and got no delta');
  if (sessions === undefined) {
    const db = new Database(data.sqliteFile, { readonly: true, fileMustExist: true, timeout: 5000 });
    sessions = new SqliteSessions(db, () => new Date());
  }
  const table = sessions;
  const through = Math.max(after, table.lastRevocationSequence());
  const chunk = Math.max(1, data.readChunk ?? Number.MAX_SAFE_INTEGER);
  function* deltas(): Generator<RevokedColumns> {
    for (let from = after; from < through; from += chunk) {
      reads.count += 1;
      yield table.revokedSerialColumns(from, Math.min(through, from + chunk), now);
    }
  }
  return { deltas: deltas(), throughSequence: through };
}

function failure(id: number, e: unknown): CrlWorkerReply {
  if (isLanyardError(e)) return { type: 'failed', id, typed: true, code: e.code, message: e.message };
  const name = e instanceof Error ? e.name : typeof e;
  const message = e instanceof Error ? e.message : 'non-error thrown';
  return { type: 'failed', id, typed: false, code: name, message };
}
