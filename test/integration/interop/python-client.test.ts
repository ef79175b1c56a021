/**
 * An independent client: scripts/python-client/attest.py (Debian's python3-grpcio, stubs compiled from
 * proto/ at run time, nothing from the Node side) attests with a join token against a real server on
 * 127.0.0.1:0. The SVID it writes must verify with our verifier against the server's bundle.
 *
 * before() installs the Debian packages with scripts/python-client/install-deps.sh (a no-op when they are
 * there; apt-get as root otherwise). If that fails, the suite fails with the script's output: nothing is
 * skipped. The client runs under Debian's /usr/bin/python3, never a `python3` found on PATH (pyenv etc.),
 * which would not see Debian's packages.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { decodePemBlocks } from '../../../src/x509/pem';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { REPO_ROOT } from '../../support/paths';
import { certPem, createCa } from '../../support/pki';

const ROOT = REPO_ROOT;
const INSTALL = path.join(ROOT, 'scripts', 'python-client', 'install-deps.sh');
const CLIENT = path.join(ROOT, 'scripts', 'python-client', 'attest.py');
const PYTHON = '/usr/bin/python3';
const TD = 'lanyard.local';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program without blocking the event loop (the server under test lives in this process). */
function run(file: string, args: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const status = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ status, stdout, stderr });
    });
  });
}

/** install-deps.sh with its output streamed into one text (apt-get can take minutes on a fresh machine). */
function install(timeoutMs: number): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', [INSTALL], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: null, output: `${output}\n${String(e)}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ status: code, output: signal ? `${output}\n(killed by ${signal})` : output });
    });
  });
}

/** The one JSON line the client prints. */
function report(r: Run): Record<string, unknown> {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    assert.fail(`client printed no JSON (exit ${r.status}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}

describe('interop: a Python gRPC client (Debian python3-grpcio) attests with a join token', function () {
  // apt-get update + install on a fresh machine.
  this.timeout(15 * 60_000);
  const files = tempDataDir();
  const bundleFile = path.join(files, 'bundle.pem');
  const spiffeId = `spiffe://${TD}/agents/python-client`;
  let s: TestServer;
  let entryId = '';

  const attestPy = (token: string, out: string, ...extra: string[]): Promise<Run> =>
    run(
      PYTHON,
      [
        CLIENT,
        '--server',
        s.running.publicAddress,
        '--bundle',
        bundleFile,
        '--token',
        token,
        '--out',
        out,
        ...extra,
      ],
      120_000,
    );
  const newToken = async (): Promise<string> => (await s.client.createJoinToken({ spiffeId })).token;

  before(async function () {
    const inst = await install(14 * 60_000);
    if (inst.status !== 0) {
      throw new Error(`scripts/python-client/install-deps.sh failed (exit ${inst.status}):\n${inst.output}`);
    }
    s = await startTestServer();
    const { entry } = await s.client.createEntry({
      entry: { spiffeId, selectors: [{ type: 'unix', value: 'uid:1000' }], allowedScopes: ['read'] },
    });
    entryId = entry!.id;
    // What `lanyard bundle show --format pem` prints, over the same admin API.
    const { bundle } = await s.client.getBundle({});
    fs.writeFileSync(bundleFile, bundle!.x509AuthoritiesPem);
  });

  after(async () => {
    await s?.stop();
    if (s) fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  let spentToken = '';

  it('attests, writes svid.pem / svid_key.pem (0600) / bundle.pem; the SVID verifies with verifyX509Svid', async () => {
    const token = await newToken();
    const out = path.join(files, 'out');
    const r = await attestPy(token, out);
    const json = report(r);
    assert.equal(r.status, 0, `exit ${r.status}: ${r.stdout} ${r.stderr}`);
    spentToken = token;
    assert.equal(json.spiffe_id, spiffeId);
    assert.equal(json.entry_id, entryId);

    const chain = decodePemBlocks(fs.readFileSync(path.join(out, 'svid.pem'), 'utf8'), 'CERTIFICATE');
    assert.ok(chain.length >= 1);
    const { bundle } = await s.client.getBundle({});
    const verified = verifyX509Svid(
      chain,
      X509Bundle.fromPem(TrustDomain.parse(TD), bundle!.x509AuthoritiesPem),
    );
    assert.equal(verified.id.toString(), spiffeId);
    assert.equal(verified.context?.provenance.method, 'join_token');
    assert.deepEqual(verified.context?.scopes, ['read']);
    assert.deepEqual(
      Buffer.from(verified.context!.provenance.evidenceSha256),
      createHash('sha256').update(token).digest(),
    );

    // What the client printed is what it was issued.
    const leaf = new X509Certificate(Buffer.from(chain[0]!));
    assert.equal(String(json.serial).toLowerCase(), leaf.serialNumber.toLowerCase());
    assert.equal(new Date(String(json.not_after)).getTime(), new Date(leaf.validTo).getTime());

    // The key is the client's own, private to its owner, and the one the leaf certifies.
    const keyFile = path.join(out, 'svid_key.pem');
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    const pub = createPublicKey(fs.readFileSync(keyFile));
    assert.ok(leaf.publicKey.equals(pub), 'svid_key.pem does not match the leaf');

    // bundle.pem holds the result's bundle: the server's roots.
    const written = decodePemBlocks(fs.readFileSync(path.join(out, 'bundle.pem'), 'utf8'), 'CERTIFICATE');
    assert.deepEqual(
      written.map((d) => Buffer.from(d).toString('hex')),
      bundle!.x509Authorities.map((d) => Buffer.from(d).toString('hex')),
    );
  });

  it('the same token again: exit 1 with UNAUTHENTICATED ("already used"), nothing written', async () => {
    assert.ok(spentToken, 'the first attestation did not run');
    const out = path.join(files, 'out-replay');
    const r = await attestPy(spentToken, out);
    const json = report(r);
    assert.equal(r.status, 1, `exit ${r.status}: ${r.stdout} ${r.stderr}`);
    assert.equal(json.code, 'UNAUTHENTICATED');
    assert.equal(json.code_number, grpc.status.UNAUTHENTICATED);
    assert.match(String(json.details), /already used/);
    assert.ok(!fs.existsSync(out));
  });

  it('pins the bundle: a client trusting another CA does not connect (UNAVAILABLE) and the token stays unspent', async () => {
    const foreignFile = path.join(files, 'foreign.pem');
    fs.writeFileSync(foreignFile, certPem(createCa(TD).cert));
    const token = await newToken();
    const r = await run(
      PYTHON,
      [
        CLIENT,
        '--server',
        s.running.publicAddress,
        '--bundle',
        foreignFile,
        '--token',
        token,
        '--out',
        path.join(files, 'x'),
      ],
      120_000,
    );
    assert.equal(r.status, 1, `exit ${r.status}: ${r.stdout} ${r.stderr}`);
    assert.equal(report(r).code, 'UNAVAILABLE');
    // The call never reached the server: the token still works.
    const ok = await attestPy(token, path.join(files, 'out-after-foreign'));
    assert.equal(ok.status, 0, `exit ${ok.status}: ${ok.stdout} ${ok.stderr}`);
  });

  it("checks the server's SPIFFE ID: expecting spiffe://other.td/lanyard/server fails the handshake (UNAVAILABLE)", async () => {
    const token = await newToken();
    const r = await attestPy(token, path.join(files, 'y'), '--trust-domain', 'other.td');
    assert.equal(r.status, 1, `exit ${r.status}: ${r.stdout} ${r.stderr}`);
    const json = report(r);
    assert.equal(json.code, 'UNAVAILABLE');
    assert.match(String(json.details), /spiffe:\/\/other\.td\/lanyard\/server/);
  });
});
