/**
 * `lanyard ... | head -1`: the reader closes the pipe before the CLI has written; the CLI must end quietly
 * (exit 0, no stack trace) rather than die on EPIPE.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../../support/paths';

const ENV = { ...process.env, LANYARD_FROM_SOURCE: '1' };

/** Runs the CLI with its stdout a pipe whose read end this process closes at once. */
function runWithClosedStdout(
  cwd: string,
  args: string[],
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd,
      env: ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Closed before the CLI (which takes a good while to load) can write a byte: its first write gets EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

describe('lanyard with a stdout pipe closed early', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lanyard-epipe-'));
    for (const args of [
      ['ca', 'init', '--trust-domain', 'example.org', '--out', 'ca'],
      ['svid', 'mint', '--ca', 'ca', '--id', 'spiffe://example.org/agent/planner', '--out', 'w'],
    ]) {
      const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env: ENV, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('svid inspect exits 0 without a stack trace', async () => {
    const r = await runWithClosedStdout(dir, ['svid', 'inspect', join('w', 'svid.pem')]);
    assert.equal(r.signal, null);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  it('keeps the failure code of a command that failed', async () => {
    // svid verify prints its verdict on stdout and exits 1 when the SVID is rejected (here: expired).
    const r = await runWithClosedStdout(dir, [
      'svid',
      'verify',
      '--chain',
      join('w', 'svid.pem'),
      '--bundle',
      join('w', 'bundle.pem'),
      '--at',
      '2099-01-01T00:00:00Z',
    ]);
    assert.equal(r.signal, null);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|at .*\.ts:\d+/);
  });
});
