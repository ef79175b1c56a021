/**
 * `lanyard audit export` and `audit verify` on a server chain many export batches long: the server sends it in
 * pages, the CLI writes and verifies each batch as it arrives. The chain crosses several pages, every record
 * arrives exactly once and in order, and a tamper in the middle and a cut tail are found at their sequence
 * numbers.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nextRecord, recordLine } from '../../../src/audit/chain';
import { signCheckpoint } from '../../../src/audit/checkpoint';
import { ErrorCode, isLanyardError } from '../../../src/errors';
import { EXIT_OK, EXIT_REJECTED } from '../../../src/cli/exit-codes';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { startTestServer, type TestServer } from '../../support/test-server';
import { BIN, runCli, type CliResult } from '../../support/server-process';
import { tempDir } from '../../support/tmp';

/** Several ExportAudit batches (500 lines each) and more than one verifier hash window would hold at 1,000. */
const SEEDED = 2_600;

const lanyard = (args: string[]): Promise<CliResult> => runCli(args, {}, path.dirname(BIN));
const expectExit = (r: CliResult, code: number): CliResult => {
  assert.equal(r.code, code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
};

describe('lanyard audit export and verify over a chain of many pages', function () {
  this.timeout(180_000);
  const files = tempDir('audit-stream');
  let s: TestServer;
  let socket: string[];
  let bundleFile: string;
  let chain: string;

  before(async () => {
    s = await startTestServer();
    socket = ['--socket', s.config.adminSocketPath];
    bundleFile = path.join(files, 'bundle.json');
    fs.writeFileSync(bundleFile, (await s.client.getBundle()).bundle!.spiffeBundleJson);
    const audit = new AuditAdminClient(s.config.adminSocketPath);
    try {
      chain = (await audit.head()).chain;
    } finally {
      audit.close();
    }
    // Records the server itself could have written, appended after its own in one transaction.
    let head = await s.running.store.audit.head(chain);
    const records = [];
    for (let i = 0; i < SEEDED; i++) {
      const r = nextRecord(
        head,
        {
          event: 'hop.decision',
          decision: i % 7 === 3 ? 'deny' : 'allow',
          actor: `spiffe://lanyard.local/agents/a${i % 9}`,
          sessionId: `s-${Math.floor(i / 10)}`,
          rootSessionId: `s-${Math.floor(i / 10)}`,
          principal: `user-${i % 13}`,
        },
        new Date(),
      );
      records.push(r);
      head = { chain, seq: r.seq, hash: r.hash };
    }
    await s.running.store.audit.appendRecords(chain, records, []);
  });
  after(async () => {
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  const recordSeqs = (text: string): number[] =>
    text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; seq?: number })
      .filter((o) => o.type === 'record')
      .map((o) => o.seq!);

  it('exports every record once, in order, across the pages, to a file and to stdout; both verify', async () => {
    const out = path.join(files, 'export.jsonl');
    const r = expectExit(await lanyard(['audit', 'export', '--out', out, ...socket]), EXIT_OK);
    const text = fs.readFileSync(out, 'utf8');
    const seqs = recordSeqs(text);
    assert.ok(seqs.length >= SEEDED, `${seqs.length} records`);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 1),
    );
    assert.match(r.stderr, new RegExp(`wrote ${text.trimEnd().split('\n').length} lines to`));

    const ok = expectExit(
      await lanyard(['audit', 'verify', '--file', out, '--bundle', bundleFile, '--json']),
      EXIT_OK,
    );
    const [v] = JSON.parse(ok.stdout) as { ok: boolean; records: number; checkpointedSeq: number }[];
    assert.equal(v?.records, seqs.length);
    assert.equal(v?.checkpointedSeq, seqs.length);

    const piped = expectExit(await lanyard(['audit', 'export', ...socket]), EXIT_OK);
    assert.ok(recordSeqs(piped.stdout).length >= seqs.length);
    const server = expectExit(await lanyard(['audit', 'verify', '--server', '--json', ...socket]), EXIT_OK);
    const [own] = JSON.parse(server.stdout) as { ok: boolean; records: number }[];
    assert.equal(own?.ok, true);
    assert.ok(own!.records >= seqs.length);
  });

  it('finds an edit in the middle and a cut tail at their sequence numbers', async () => {
    const out = path.join(files, 'for-tamper.jsonl');
    expectExit(await lanyard(['audit', 'export', '--out', out, ...socket]), EXIT_OK);
    const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n');
    const at = (seq: number): number =>
      lines.findIndex((l) => l.includes(`"seq":${seq},`) && l.includes('"record"'));

    const edited = [...lines];
    edited[at(1_500)] = edited[at(1_500)]!.replace(/"decision":"(allow|deny)"/, (_m, d: string) =>
      d === 'allow' ? '"decision":"deny"' : '"decision":"allow"',
    );
    const editedFile = path.join(files, 'edited.jsonl');
    fs.writeFileSync(editedFile, `${edited.join('\n')}\n`);
    const e = expectExit(
      await lanyard(['audit', 'verify', '--file', editedFile, '--bundle', bundleFile]),
      EXIT_REJECTED,
    );
    assert.match(e.stdout, /BROKEN at 1500: edited/);

    // The records from 2,000 on cut, the final checkpoint kept: the checkpoint proves what is missing.
    const cut = [...lines.slice(0, at(2_000)), lines[lines.length - 1]!];
    assert.match(cut[cut.length - 1]!, /"type":"checkpoint"/);
    const cutFile = path.join(files, 'cut.jsonl');
    fs.writeFileSync(cutFile, `${cut.join('\n')}\n`);
    const c = expectExit(
      await lanyard(['audit', 'verify', '--file', cutFile, '--bundle', bundleFile]),
      EXIT_REJECTED,
    );
    assert.match(c.stdout, /BROKEN at 2000: truncated/);
  });

  it('reads checkpoints a page at a time: thousands of them export and verify, none read all at once', async () => {
    // A checkpoint over every seeded record, signed with the server's own audit key (as its timer and every
    // export sign them), then counted as the export and `verify --server` read them.
    const key = s.running.audit.key;
    const { records } = await s.running.store.audit.readRecords(chain, 0, SEEDED);
    const time = new Date().toISOString();
    for (const r of records) {
      await s.running.store.audit.addCheckpoint(
        signCheckpoint({ chain, seq: r.seq, hash: r.hash }, key, new Date(time)),
      );
    }
    const audit = s.running.store.audit;
    const calls = { all: 0, pages: [] as number[] };
    const { checkpoints, readCheckpoints } = audit;
    audit.checkpoints = (c) => {
      calls.all++;
      return checkpoints(c);
    };
    audit.readCheckpoints = async (c, after, limit) => {
      const page = await readCheckpoints(c, after, limit);
      calls.pages.push(page.length);
      return page;
    };
    try {
      const server = expectExit(await lanyard(['audit', 'verify', '--server', '--json', ...socket]), EXIT_OK);
      const [own] = JSON.parse(server.stdout) as { ok: boolean; checkpoints: number; records: number }[];
      assert.equal(own?.ok, true);
      assert.ok(own!.checkpoints > SEEDED, `${own!.checkpoints} checkpoints`);
      assert.equal(calls.all, 0, 'neither the export nor the head reads every checkpoint');
      assert.ok(calls.pages.length >= 3, `${calls.pages.length} pages`);
      assert.ok(Math.max(...calls.pages) <= 1_000, `pages of ${calls.pages.join(', ')}`);
    } finally {
      audit.checkpoints = checkpoints;
      audit.readCheckpoints = readCheckpoints;
    }
  });

  it('a record over 4 MiB (an entry update recording changed fields in full) exports in pieces and verifies', async () => {
    // Longer than gRPC's 4 MiB message limit, written by the server's own recorder; multi-byte characters.
    const value = (c: string): string => `${c}€`.repeat(250_000);
    const big = await s.running.audit.record({
      event: 'entry.update',
      decision: 'allow',
      actor: 'admin-socket',
      subject: 'e-big',
      changes: ['a', 'b', 'c', 'd'].map((c) => ({
        field: `f${c}`,
        before: value(c),
        after: value(c.toUpperCase()),
      })),
    });
    const out = path.join(files, 'big.jsonl');
    expectExit(await lanyard(['audit', 'export', '--out', out, ...socket]), EXIT_OK);
    const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n');
    const at = lines.findIndex((l) => l.includes(`"seq":${big.seq},`) && l.includes('"record"'));
    assert.ok(at > 0, 'the big record is in the export');
    assert.ok(Buffer.byteLength(lines[at]!) > 6 * 1024 * 1024, `${Buffer.byteLength(lines[at]!)} bytes`);
    assert.equal(lines[at], recordLine(big), 'exported byte for byte');
    expectExit(await lanyard(['audit', 'verify', '--file', out, '--bundle', bundleFile]), EXIT_OK);
    expectExit(await lanyard(['audit', 'verify', '--server', ...socket]), EXIT_OK);

    // One character of it changed: found where it is.
    const edited = [...lines];
    edited[at] = edited[at]!.replace('"before":"a€a€', '"before":"a€b€');
    assert.notEqual(edited[at], lines[at]);
    const editedFile = path.join(files, 'big-edited.jsonl');
    fs.writeFileSync(editedFile, `${edited.join('\n')}\n`);
    const e = expectExit(
      await lanyard(['audit', 'verify', '--file', editedFile, '--bundle', bundleFile]),
      EXIT_REJECTED,
    );
    assert.match(e.stdout, new RegExp(`BROKEN at ${big.seq}: edited`));

    // A client whose bound is below the record refuses it with a typed error, not a transport one.
    const small = new AuditAdminClient(s.config.adminSocketPath, { maxExportLineBytes: 1024 * 1024 });
    try {
      await assert.rejects(
        (async () => {
          for await (const _batch of small.exportLines()) {
            // read on
          }
        })(),
        (err: unknown) => {
          assert.ok(isLanyardError(err), String(err));
          assert.equal(err.code, ErrorCode.AUDIT_RECORD_INVALID);
          assert.match(err.message, /longer than 1048576 bytes/);
          return true;
        },
      );
    } finally {
      small.close();
    }
  });

  it('refuses to export over an existing file, and leaves it as it was', async () => {
    const existing = path.join(files, 'existing.jsonl');
    fs.writeFileSync(existing, 'keep me\n');
    const refused = await lanyard(['audit', 'export', '--out', existing, ...socket]);
    assert.notEqual(refused.code, EXIT_OK);
    assert.equal(fs.readFileSync(existing, 'utf8'), 'keep me\n');
  });
});
