/**
 * `lanyard audit` as a person runs it (node bin/lanyard.js, from source) against a real server on a temp
 * admin socket: verify --server, export then verify --file with the key from the SPIFFE bundle, a tampered
 * export and a forged key fail with exit 1 naming the break, ship a service chain, trace it as JSON and text
 * (and offline from the file), and usage errors exit 2.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileAuditLog } from '../../../src/audit/file-log';
import type { Trace } from '../../../src/audit/trace';
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE } from '../../../src/cli/exit-codes';
import { startTestServer, type TestServer } from '../../support/test-server';
import { BIN, runCli, type CliResult } from '../../support/server-process';
import { tempDir } from '../../support/tmp';

const SERVICE = 'spiffe://lanyard.local/services/search';

type Result = CliResult;

const lanyard = (args: string[]): Promise<Result> => runCli(args, {}, path.dirname(BIN));

const expectExit = (r: Result, code: number): Result => {
  assert.equal(r.code, code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
};

describe('lanyard audit against a running server', function () {
  this.timeout(120_000);
  const files = tempDir('audit');
  let s: TestServer;
  let socket: string[];
  let bundleFile: string;
  let hopFile: string;

  before(async () => {
    s = await startTestServer();
    socket = ['--socket', s.config.adminSocketPath];
    await s.client.createEntry({
      entry: {
        spiffeId: 'spiffe://lanyard.local/agents/demo',
        selectors: [{ type: 'unix', value: 'uid:1000' }],
      },
    });
    await s.client.createJoinToken({ spiffeId: 'spiffe://lanyard.local/agents/demo' });
    bundleFile = path.join(files, 'bundle.json');
    fs.writeFileSync(bundleFile, (await s.client.getBundle()).bundle!.spiffeBundleJson);
    hopFile = path.join(files, 'search.jsonl');
    const log = await FileAuditLog.open({ file: hopFile, chain: SERVICE });
    const ctx = { sessionId: 's-carol', rootSessionId: 's-carol', principal: 'carol', agentId: 'e-1' };
    await log.append({
      event: 'hop.decision',
      decision: 'allow',
      service: SERVICE,
      action: 'http GET /search',
      ...ctx,
    });
    await log.append({
      event: 'hop.decision',
      decision: 'deny',
      reason: 'ERR_SCOPE_ESCALATION',
      service: SERVICE,
      action: 'http POST /index',
      ...ctx,
    });
    await log.close();
  });
  after(async () => {
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  it('verify --server: the server chain is intact, signed through its last record, and the witness agrees', async () => {
    const r = expectExit(await lanyard(['audit', 'verify', '--server', ...socket]), EXIT_OK);
    const m =
      /chain spiffe:\/\/lanyard\.local\/lanyard\/server: OK, (\d+) records, \d+ checkpoints; signed through (\d+) at \S+; (\d+) checkpoints held by 1 witness agree/.exec(
        r.stdout,
      );
    assert.ok(m, r.stdout);
    assert.equal(m[2], m[1], 'the server signed its head before exporting it');
    assert.ok(Number(m[3]) >= 1);
  });

  it('export --out, then verify --file with the audit key from the SPIFFE bundle; a deleted line is exit 1 naming its sequence number', async () => {
    const out = path.join(files, 'export.jsonl');
    expectExit(await lanyard(['audit', 'export', '--out', out, ...socket]), EXIT_OK);
    assert.equal(fs.statSync(out).mode & 0o777, 0o600);
    const ok = expectExit(await lanyard(['audit', 'verify', '--file', out, '--bundle', bundleFile]), EXIT_OK);
    assert.match(ok.stdout, new RegExp(`OK, .* \\(key from ${bundleFile.replace(/[/.]/g, '\\$&')}\\)`));

    const lines = fs.readFileSync(out, 'utf8').trimEnd().split('\n');
    const i = lines.findIndex((l) => l.includes('"seq":1,'));
    assert.ok(i > 0);
    const tampered = path.join(files, 'tampered.jsonl');
    fs.writeFileSync(tampered, [...lines.slice(0, i), ...lines.slice(i + 1)].join('\n') + '\n');
    const bad = expectExit(
      await lanyard(['audit', 'verify', '--file', tampered, '--bundle', bundleFile]),
      EXIT_REJECTED,
    );
    assert.match(bad.stdout, /BROKEN at 1: deleted: record 1 is missing/);

    // A checkpoint checked against another key than the server's is a break too.
    const otherKey = path.join(files, 'other.pem');
    fs.writeFileSync(
      otherKey,
      generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }),
    );
    const forged = expectExit(
      await lanyard(['audit', 'verify', '--file', out, '--key', otherKey, '--json']),
      EXIT_REJECTED,
    );
    const [result] = JSON.parse(forged.stdout) as { ok: boolean; break: { kind: string } }[];
    assert.equal(result?.break.kind, 'checkpoint_signature');
  });

  it('ship a service chain, then trace its principal as JSON and its session as text', async () => {
    const shipped = expectExit(await lanyard(['audit', 'ship', '--file', hopFile, ...socket]), EXIT_OK);
    assert.match(shipped.stdout, new RegExp(`chain ${SERVICE}: 2 new records stored, head 2`));
    const json = expectExit(
      await lanyard(['audit', 'trace', '--principal', 'carol', '--json', ...socket]),
      EXIT_OK,
    );
    // The server never started s-carol: the service's records are its own report, listed apart and labelled,
    // and make no session of their own.
    const trace = JSON.parse(json.stdout) as Trace;
    assert.deepEqual(trace.principals, []);
    assert.deepEqual(
      trace.reported.map((e) => [e.decision, e.action, e.reportedBy, e.sessionId]),
      [
        ['allow', 'http GET /search', SERVICE, 's-carol'],
        ['deny', 'http POST /index', SERVICE, 's-carol'],
      ],
    );
    const text = expectExit(await lanyard(['audit', 'trace', '--session', 's-carol', ...socket]), EXIT_OK);
    assert.doesNotMatch(text.stdout, /principal carol/);
    assert.match(
      text.stdout,
      /hop\.decision {2}DENY ERR_SCOPE_ESCALATION {2}at spiffe:\/\/lanyard\.local\/services\/search .*reported by spiffe:\/\/lanyard\.local\/services\/search #2 {2}session s-carol/,
    );
    // Offline, from the service's own file: the same report without the server.
    const offline = expectExit(
      await lanyard(['audit', 'trace', '--principal', 'carol', '--file', hopFile]),
      EXIT_OK,
    );
    assert.match(
      offline.stdout,
      /reported by spiffe:\/\/lanyard\.local\/services\/search #1 {2}session s-carol/,
    );
    // The server's chain records the shipment and still verifies, as does the shipped chain.
    const v = expectExit(await lanyard(['audit', 'verify', '--server', ...socket]), EXIT_OK);
    assert.match(v.stdout, new RegExp(`chain ${SERVICE}: OK, 2 records`));
  });

  it('usage errors exit 2', async () => {
    const r = expectExit(await lanyard(['audit', 'verify', ...socket]), EXIT_USAGE);
    assert.match(r.stderr, /exactly one of --file or --server/);
  });
});
