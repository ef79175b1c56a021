import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { X509Bundle } from '../../../src/bundle';
import { attestToServer } from '../../../src/client/attest';
import { initDevCa, mintSvid } from '../../../src/ca/dev-ca';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { startTestServer, type TestServer } from '../../support/test-server';
import { BIN } from '../../support/paths';

const TD = 'lanyard.local';

describe('workload client: attest to a real server and write the SVID files', function () {
  this.timeout(60_000);
  let s: TestServer;
  let work: string;
  const id = `spiffe://${TD}/agents/demo`;

  before(async () => {
    s = await startTestServer();
    work = mkdtempSync(join(tmpdir(), 'lanyard-client-'));
    writeFileSync(join(work, 'bundle.pem'), s.running.ca.bundle().toPem());
    await s.client.createEntry({ entry: { spiffeId: id, selectors: [{ type: 'unix', value: 'uid:1000' }] } });
  });
  after(async () => s.stop());

  async function token(): Promise<string> {
    return (await s.client.createJoinToken({ spiffeId: id })).token;
  }

  // Asynchronous on purpose: the server runs in this process, and a blocking spawn would freeze it.
  function cli(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [BIN, ...args], { cwd: work, encoding: 'utf8' }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ status: code, stdout, stderr });
      });
    });
  }

  it('attestToServer returns an SVID that verifies against the bundle, with the key generated locally', async () => {
    const bundle = X509Bundle.fromPem(TrustDomain.parse(TD), readFileSync(join(work, 'bundle.pem'), 'utf8'));
    const got = await attestToServer({
      server: s.running.publicAddress,
      bundle,
      attestorType: 'join_token',
      evidence: Buffer.from(await token()),
    });
    assert.equal(got.svid.id.toString(), id);
    const verified = verifyX509Svid(got.svid.chain, got.bundle);
    assert.equal(verified.id.toString(), id);
    assert.ok(verified.chain[0]!.publicKey.equals(createPublicKey(got.svid.privateKey)));
  });

  it('refuses a server that the bootstrap bundle does not vouch for (fails closed, UNAVAILABLE)', async () => {
    const other = initDevCa({ trustDomain: TD, dir: mkdtempSync(join(tmpdir(), 'lanyard-other-ca-')) });
    const wrong = X509Bundle.fromDer(TrustDomain.parse(TD), [other.cert.der]);
    await assert.rejects(
      attestToServer({
        server: s.running.publicAddress,
        bundle: wrong,
        attestorType: 'join_token',
        evidence: Buffer.from(await token()),
      }),
      (e: { code?: number }) => e.code === status.UNAVAILABLE,
    );
  });

  describe('server identity is checked by SPIFFE ID, not host name', () => {
    // A bare gRPC server with no services: a client that accepts its identity gets UNIMPLEMENTED; one that
    // refuses it never gets past the handshake (UNAVAILABLE).
    async function impostor(
      spiffeId: string,
    ): Promise<{ address: string; bundle: X509Bundle; close(): void }> {
      const ca = initDevCa({ trustDomain: TD, dir: mkdtempSync(join(tmpdir(), 'lanyard-impostor-ca-')) });
      const minted = mintSvid(ca, { spiffeId });
      const server = new grpc.Server();
      const creds = grpc.ServerCredentials.createSsl(null, [
        {
          private_key: Buffer.from(minted.marshal().key),
          cert_chain: Buffer.from(minted.marshal().certificates),
        },
      ]);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
      );
      return {
        address: `127.0.0.1:${port}`,
        bundle: X509Bundle.fromDer(TrustDomain.parse(TD), [ca.cert.der]),
        close: () => server.forceShutdown(),
      };
    }
    const attestTo = (address: string, bundle: X509Bundle): Promise<unknown> =>
      attestToServer({ server: address, bundle, attestorType: 'join_token', evidence: Buffer.from('x') });

    it('accepts a server whose SVID is spiffe://<td>/lanyard/server (control)', async () => {
      const srv = await impostor(`spiffe://${TD}/lanyard/server`);
      try {
        await assert.rejects(
          attestTo(srv.address, srv.bundle),
          (e: { code?: number }) => e.code === status.UNIMPLEMENTED,
        );
      } finally {
        srv.close();
      }
    });

    it('refuses a server of the right CA with another SPIFFE ID', async () => {
      const srv = await impostor(`spiffe://${TD}/agents/impostor`);
      try {
        await assert.rejects(
          attestTo(srv.address, srv.bundle),
          (e: { code?: number }) => e.code === status.UNAVAILABLE,
        );
      } finally {
        srv.close();
      }
    });
  });

  it('`lanyard svid fetch` writes svid.pem, svid_key.pem (0600) and bundle.pem, and a replayed token is refused', async () => {
    const t = await token();
    writeFileSync(join(work, 'token'), t, { mode: 0o600 });
    const ok = await cli(
      'svid',
      'fetch',
      '--server',
      s.running.publicAddress,
      '--bundle',
      'bundle.pem',
      '--join-token-file',
      'token',
      '--out',
      'svid',
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /got spiffe:\/\/lanyard.local\/agents\/demo/);
    assert.ok(!ok.stdout.includes(t), 'the token is never echoed');
    assert.equal(statSync(join(work, 'svid', 'svid_key.pem')).mode & 0o777, 0o600);
    const verify = await cli('svid', 'verify', '--chain', 'svid/svid.pem', '--bundle', 'svid/bundle.pem');
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);

    const replay = await cli(
      'svid',
      'fetch',
      '--server',
      s.running.publicAddress,
      '--bundle',
      'bundle.pem',
      '--join-token-file',
      'token',
      '--out',
      'svid2',
    );
    assert.equal(replay.status, 1);
    assert.match(replay.stderr, /attestation refused: UNAUTHENTICATED/);
    assert.ok(!replay.stderr.includes(t), 'the token is never echoed');
  });

  it('`lanyard svid fetch` without a token is a usage error (exit 2)', async () => {
    const r = await cli(
      'svid',
      'fetch',
      '--server',
      s.running.publicAddress,
      '--bundle',
      'bundle.pem',
      '--out',
      'x',
    );
    assert.equal(r.status, 2);
  });
});
