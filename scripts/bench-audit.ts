/**
 * `npm run bench:audit`: the audit trail's costs, each beside a baseline measured in the same run.
 *
 *   append   durable appends to the server's chain in SQLite (read head, hash, insert, fsync'd commit) vs a
 *            plain durable INSERT of the same row; the file chain (write + fdatasync) vs a raw write + fdatasync
 *   query    with --records (default 1,000,000) records loaded: AuditService-style queries by session, root
 *            session, serial, principal and agent (p50/p99) vs the same question answered by a full scan; and
 *            a whole `lanyard audit trace --principal` (principal, then each root session) end to end
 *
 *   npm run bench:audit
 *   npm run bench:audit -- --records 200000 --seconds 3
 *   npm run bench:audit -- --query-only      # skip the append rates
 * Figures, not assertions: tests never time anything.
 */
import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { FileAuditLog } from '../src/audit/file-log';
import type { AuditQueryKey } from '../src/audit/log';
import { emptyHead, nextRecord } from '../src/audit/chain';
import type { AuditRecord } from '../src/audit/record';
import { AGENTS, event, PER_ROOT, PRINCIPALS } from './bench-audit-trail';
import { buildTrace } from '../src/audit/trace';
import { SqliteAudit } from '../src/store/sqlite/audit';
import { SqliteStore } from '../src/store/sqlite/sqlite-store';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RECORDS = arg('--records', 1_000_000);
const SECONDS = arg('--seconds', 1);
const CHAIN = 'spiffe://bench.local/lanyard/server';

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/**
 * Durable rates depend on the disk more than on anything else, and a shared disk drifts: each figure and its
 * baseline run in alternating rounds (ABABAB), each on its own file, and the rates are summed over the rounds.
 */
async function alternate(
  rounds: number,
  a: { name: string; op: (i: number) => Promise<unknown> | unknown },
  b: { name: string; op: (i: number) => Promise<unknown> | unknown },
): Promise<void> {
  const ops = [0, 0];
  const ms = [0, 0];
  let n = 0;
  for (let round = 0; round < rounds; round++) {
    for (const [k, f] of [a, b].entries()) {
      const start = Date.now();
      const until = start + (SECONDS * 1000) / rounds;
      while (Date.now() < until) {
        await f.op(n++);
        ops[k]!++;
      }
      ms[k]! += Date.now() - start;
    }
  }
  const perSec = (k: number): number => ops[k]! / (ms[k]! / 1000);
  process.stdout.write(`  ${a.name.padEnd(62)} ${fmt(perSec(0)).padStart(10)} /s\n`);
  process.stdout.write(`  ${b.name.padEnd(62)} ${fmt(perSec(1)).padStart(10)} /s\n`);
  process.stdout.write(`  ${'ratio'.padEnd(62)} ${(perSec(0) / perSec(1)).toFixed(2).padStart(10)}\n`);
}

async function appendBench(dir: string): Promise<void> {
  process.stdout.write('append (durable: each resolves after its commit / fdatasync; alternating rounds)\n');
  const store = await SqliteStore.open({ file: path.join(dir, 'append.db') });
  const raw = new Database(path.join(dir, 'plain.db'));
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = FULL');
  raw.exec('CREATE TABLE plain (i INTEGER, body TEXT)');
  const insert = raw.prepare('INSERT INTO plain (i, body) VALUES (?, ?)');
  await alternate(
    6,
    { name: 'SQLite chain: store.audit.append', op: (i) => store.audit.append(CHAIN, event(i), new Date()) },
    {
      name: 'baseline: plain durable INSERT of the same JSON',
      op: (i) => insert.run(i, JSON.stringify(event(i))),
    },
  );
  await store.close();
  raw.close();

  const log = await FileAuditLog.open({ file: path.join(dir, 'hops.jsonl'), chain: CHAIN });
  const fh = await fsp.open(path.join(dir, 'raw.jsonl'), 'a');
  await alternate(
    6,
    { name: 'file chain: FileAuditLog.append', op: (i) => log.append(event(i)) },
    {
      name: 'baseline: write the same JSON line + fdatasync',
      op: async (i) => {
        await fh.write(`${JSON.stringify(event(i))}\n`);
        await fh.datasync();
      },
    },
  );
  await log.close();
  await fh.close();
}

async function queryBench(dir: string): Promise<void> {
  const file = path.join(dir, 'query.db');
  (await SqliteStore.open({ file })).close();
  process.stdout.write(
    `\nloading ${RECORDS.toLocaleString('en-US')} chained records (batched transactions)...\n`,
  );
  const started = Date.now();
  {
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const audit = new SqliteAudit(db);
    // The records are chained in memory (hash and link, as append does) and stored 10,000 per transaction
    // through appendRecords, which checks each link against the stored head.
    let head = emptyHead(CHAIN);
    for (let from = 0; from < RECORDS; from += 10_000) {
      const batch: AuditRecord[] = [];
      for (let i = from; i < Math.min(RECORDS, from + 10_000); i++) {
        const r = nextRecord(head, event(i), new Date());
        batch.push(r);
        head = { chain: CHAIN, seq: r.seq, hash: r.hash };
      }
      audit.appendRecords(CHAIN, batch, []);
    }
    db.close();
  }
  const loadSeconds = (Date.now() - started) / 1000;
  process.stdout.write(
    `  loaded in ${loadSeconds.toFixed(1)} s (${fmt(RECORDS / loadSeconds)} records/s, hashing included)\n`,
  );

  const store = await SqliteStore.open({ file });
  const scanDb = new Database(file, { readonly: true });
  const roots = Math.floor(RECORDS / PER_ROOT);
  const pick = (n: number): number => Math.floor(Math.random() * n);
  const cases: { key: AuditQueryKey; value: () => string; json: string }[] = [
    { key: 'sessionId', value: () => `s-${pick(roots)}`, json: 'sessionId' },
    { key: 'rootSessionId', value: () => `s-${pick(roots)}`, json: 'rootSessionId' },
    { key: 'serial', value: () => (0x100000 + pick(RECORDS / 2)).toString(16), json: 'serial' },
    { key: 'principal', value: () => `user-${pick(Math.min(PRINCIPALS, roots))}`, json: 'principal' },
    { key: 'agentId', value: () => `e-${pick(AGENTS)}`, json: 'agentId' },
  ];
  process.stdout.write(
    '\nquery (first page, up to 100 records), indexed vs full scan of the same question\n',
  );
  process.stdout.write(
    `  ${'key'.padEnd(14)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'scan ms'.padStart(10)} ${'scan/p50'.padStart(9)}\n`,
  );
  for (const c of cases) {
    const times: number[] = [];
    for (let i = 0; i < 200; i++) {
      const t = process.hrtime.bigint();
      await store.audit.query({ key: c.key, value: c.value(), pageSize: 100 });
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    times.sort((a, b) => a - b);
    // The baseline answers the same question without the index: every row's body is read.
    const scan = scanDb.prepare(
      `SELECT body FROM audit_records NOT INDEXED WHERE json_extract(body, '$.${c.json}') = ? ORDER BY time LIMIT 100`,
    );
    const scans: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = process.hrtime.bigint();
      scan.all(c.value());
      scans.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const scanMs = scans.sort((a, b) => a - b)[1]!;
    const p50 = percentile(times, 50);
    process.stdout.write(
      `  ${c.key.padEnd(14)} ${p50.toFixed(3).padStart(9)} ${percentile(times, 99).toFixed(3).padStart(9)} ${scanMs.toFixed(1).padStart(10)} ${fmt(scanMs / p50).padStart(9)}\n`,
    );
  }

  process.stdout.write(
    '\ntrace --principal (all pages of the principal, then every root session), end to end\n',
  );
  const traceTimes: number[] = [];
  let nodes = 0;
  for (let i = 0; i < 50; i++) {
    const t = process.hrtime.bigint();
    const principal = `user-${pick(Math.min(PRINCIPALS, roots))}`;
    const first = [];
    let pageToken = '';
    do {
      const page = await store.audit.query({
        key: 'principal',
        value: principal,
        pageSize: 1000,
        ...(pageToken && { pageToken }),
      });
      first.push(...page.records);
      pageToken = page.nextPageToken;
    } while (pageToken !== '');
    const all = [...first];
    for (const root of new Set(first.map((r) => r.rootSessionId!))) {
      all.push(...(await store.audit.query({ key: 'rootSessionId', value: root, pageSize: 1000 })).records);
    }
    nodes += buildTrace(all).principals[0]?.sessions.length ?? 0;
    traceTimes.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  traceTimes.sort((a, b) => a - b);
  process.stdout.write(
    `  p50 ${percentile(traceTimes, 50).toFixed(2)} ms, p99 ${percentile(traceTimes, 99).toFixed(2)} ms (${(nodes / 50).toFixed(0)} root sessions per principal on average)\n`,
  );
  scanDb.close();
  await store.close();
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-audit-'));
  process.stdout.write(
    `Lanyard audit benchmark (${os.cpus().length} CPUs, ${SECONDS} s per rate, data in ${dir})\n\n`,
  );
  try {
    // --query-only: the queries and trace over RECORDS only (npm run bench:scale runs it so).
    if (!process.argv.includes('--query-only')) await appendBench(dir);
    await queryBench(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
