/**
 * Exec after connect: a process connects to the agent's socket, then the pid the kernel recorded at connect(2)
 * execs a binary that an entry names (by unix:path and by unix:sha256), while another process (a child it
 * forked before the exec, holding the same connection) asks for SVIDs. The agent must never hand that
 * binary's SVIDs (or keys) to the connection.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startTestServer, type TestServer } from '../../support/test-server';
import { AGENT_ID, TD, compileFixture, startAgentFor, tempDir, type AgentFixture } from '../../support/agent';

const ATTEMPTS = 20;
const CLIENT = path.join(__dirname, '..', '..', 'support', 'fixtures', 'fd-workload-client.mjs');
const PERMISSION_DENIED = 7;

interface Outcome {
  code?: number;
  details: string;
  errorCode: string;
  svids: { spiffeId: string; keyBytes: number }[];
}

const sha256 = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Runs `argv` and returns the one JSON line the Workload API client prints. */
async function run(argv: string[], cleanup: (pid: number) => void = () => {}): Promise<Outcome> {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  try {
    for (let i = 0; i < 300 && !out.includes('\n'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(out.includes('\n'), `no answer from the client: ${err}`);
    return JSON.parse(out.slice(0, out.indexOf('\n'))) as Outcome;
  } finally {
    cleanup(child.pid!);
    child.kill('SIGKILL');
    await exited;
  }
}

/**
 * The accept-time read of /proc races with the attacker's exec: when it comes first, the exec shows as a
 * change of executable; when it comes after (most attempts), only who holds the connection gives it away.
 */
const EXEC_SEEN =
  /\(exec, or pid reuse\): executable|executable \S+ \(inode \d+\) -> \S+ \(inode \d+\) \(exec\)/;

/**
 * `n` attacks: every one refused (PERMISSION_DENIED), for `reason` or because the exec itself was seen; no
 * SVID handed out.
 */
async function attack(n: number, argv: (i: number) => string[], reason: RegExp): Promise<void> {
  const outcomes: Outcome[] = [];
  for (let i = 0; i < n; i++) outcomes.push(await run(argv(i)));
  const handedOut = outcomes.flatMap((o) => o.svids.map((v) => v.spiffeId));
  assert.deepEqual(handedOut, [], `SVIDs handed out: ${handedOut.join(', ')}`);
  for (const o of outcomes) {
    assert.equal(o.code, PERMISSION_DENIED, JSON.stringify(o));
    assert.equal(o.errorCode, 'ERR_WORKLOAD_ATTESTATION_FAILED', JSON.stringify(o));
    assert.ok(reason.test(o.details) || EXEC_SEEN.test(o.details), o.details);
  }
  // Most attempts exec before the agent first looks (on the agent before the fix they got SVIDs): those are
  // refused only by the check under test.
  assert.ok(
    outcomes.some((o) => reason.test(o.details)),
    'no attempt reached the check under test',
  );
}

describe('node agent: exec after connect', function () {
  this.timeout(300_000);
  let s: TestServer;
  let a: AgentFixture;
  let attacker: string;
  let target: string;

  before(async () => {
    attacker = compileFixture('exec-after-connect');
    // The entitled binary: a copy of sleep(1) in a directory of its own, named by path and by hash.
    target = path.join(tempDir(), 'entitled-tool');
    fs.copyFileSync('/bin/sleep', target);
    fs.chmodSync(target, 0o755);
    s = await startTestServer();
    const entry = async (name: string, value: string): Promise<void> => {
      await s.client.createEntry({
        entry: {
          spiffeId: `spiffe://${TD}/workload/${name}`,
          parentId: AGENT_ID,
          selectors: [{ type: 'unix', value }],
        },
      });
    };
    await entry('by-path', `path:${target}`);
    await entry('by-sha256', `sha256:${sha256(target)}`);
    // The client's own program: what a process running it on a connection of its own is entitled to.
    await entry('node', `sha256:${sha256(process.execPath)}`);
    a = await startAgentFor(s);
  });

  after(async () => {
    await a?.close();
    await s?.stop();
  });

  it('a workload on a connection of its own gets its SVID and key', async () => {
    let got: Outcome | undefined;
    for (let i = 0; i < 100 && (got?.code !== 0 || got.svids.length === 0); i++) {
      got = await run([process.execPath, CLIENT, a.socketPath]);
      if (got.code !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(got?.code, 0, JSON.stringify(got));
    assert.deepEqual(
      got!.svids.map((v) => v.spiffeId),
      [`spiffe://${TD}/workload/node`],
    );
    assert.ok(got!.svids[0]!.keyBytes > 0);
  });

  const fork = (socket: string, mode: 'cloexec' | 'inherit'): string[] => [
    attacker,
    'fork',
    socket,
    mode,
    target,
    '30',
    '--',
    process.execPath,
    CLIENT,
  ];

  it(`${ATTEMPTS} attempts, the connection close-on-exec (gone with the exec), a forked child asking: no SVID`, () =>
    attack(
      ATTEMPTS,
      () => fork(a.socketPath, 'cloexec'),
      /which opened this connection, no longer holds it/,
    ));

  it(`${ATTEMPTS} attempts, the connection inheritable (kept by the exec'd binary), a forked child asking: no SVID`, () =>
    attack(
      ATTEMPTS,
      () => fork(a.socketPath, 'inherit'),
      /holds this connection without close-on-exec.*also held by pid \d+ \(a forked child/,
    ));

  describe('with inheritable connections allowed (--allow-inheritable-connections)', () => {
    let lenient: AgentFixture;
    before(async () => {
      lenient = await startAgentFor(s, { allowInheritableConnections: true, dir: tempDir() });
    });
    after(async () => {
      await lenient?.close();
    });

    it(`${ATTEMPTS} attempts, the connection inheritable: refused because the child holds it too`, () =>
      attack(
        ATTEMPTS,
        () => fork(lenient.socketPath, 'inherit'),
        /^this connection is also held by pid \d+/,
      ));
  });
});
