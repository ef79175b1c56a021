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
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { isLanyardError } from '../../errors';
import { ownedBytes } from '../../internal/worker-script';
import { SqliteSessions } from '../../store/sqlite/sessions';
import { ParsedCertificate } from '../../x509/certificate';
import type { CrlBuildMessage, CrlWorkerData, CrlWorkerReply, CrlWorkerRequest } from './crl-build-protocol';
import { applyAndSign, RevokedList, toColumns, type RevokedColumns } from './revoked-list';

const port = parentPort;
if (port === null) throw new Error('crl-build-worker runs only as a worker thread');
const data = (workerData ?? {}) as CrlWorkerData;
const list = new RevokedList();
/** The list holds a complete read: an incremental build may extend it. */
let primed = false;
let sessions: { db: Database.Database; table: SqliteSessions } | undefined;

port.on('message', (m: CrlWorkerRequest) => {
  port.postMessage({ type: 'started', id: m.id } satisfies CrlWorkerReply);
  const started = performance.now();
  try {
    const reply = build(m, started);
    port.postMessage(
      reply,
      reply.crls.map((c) => c.der.buffer as ArrayBuffer),
    );
  } catch (e) {
    // The list may be half-updated: only a full read may follow.
    primed = false;
    port.postMessage(failure(m.id, e));
  }
});

function build(m: CrlBuildMessage, started: number): CrlWorkerReply & { type: 'built' } {
  if (!m.full && !primed) throw new Error('an incremental CRL build reached a worker without a list');
  const thisUpdate = new Date(m.thisUpdateMs);
  let delta: RevokedColumns;
  let throughSequence: number;
  if (m.delta !== undefined) {
    delta = m.delta;
    throughSequence = m.delta.throughSequence;
  } else {
    const read = readDelta(m.full ? 0 : m.after, thisUpdate);
    delta = toColumns(read.serials);
    throughSequence = read.throughSequence;
  }
  const signers = m.signers.map((s) => ({
    authorityId: s.authorityId,
    cert: ParsedCertificate.fromDer(s.certDer),
    key: s.key,
  }));
  const crls = applyAndSign(
    list,
    {
      full: m.full,
      header: { crlNumber: m.crlNumber, thisUpdate, nextUpdate: new Date(m.nextUpdateMs) },
      delta,
    },
    signers,
  );
  primed = true;
  return {
    type: 'built',
    id: m.id,
    // Each DER in a buffer of its own, so it can be transferred rather than copied.
    crls: crls.map((c) => ({ authorityId: c.authorityId, der: ownedBytes(c.der) })),
    revokedCount: list.size,
    added: delta.serials.length,
    throughSequence,
    full: m.full,
    durationMs: performance.now() - started,
  };
}

/**
 * The revocations after `after` on this thread's own read-only connection, in one read transaction: the rows and
 * the sequence they reach are one snapshot, so a revocation the server commits meanwhile is in the next delta.
 */
function readDelta(after: number, now: Date): ReturnType<SqliteSessions['listRevokedSerialsAfter']> {
  if (data.sqliteFile === undefined) throw new Error('the CRL worker has no store to read and got no delta');
  if (sessions === undefined) {
    const db = new Database(data.sqliteFile, { readonly: true, fileMustExist: true, timeout: 5000 });
    sessions = { db, table: new SqliteSessions(db, () => new Date()) };
  }
  const { db, table } = sessions;
  return db.transaction(() => table.listRevokedSerialsAfter(after, now))();
}

function failure(id: number, e: unknown): CrlWorkerReply {
  if (isLanyardError(e)) return { type: 'failed', id, typed: true, code: e.code, message: e.message };
  const name = e instanceof Error ? e.name : typeof e;
  const message = e instanceof Error ? e.message : 'non-error thrown';
  return { type: 'failed', id, typed: false, code: name, message };
}
