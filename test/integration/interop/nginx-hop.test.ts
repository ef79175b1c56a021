/**
 * Interop with TLS stacks nobody here wrote, against a real Lanyard server:
 *  - nginx (Debian) terminates mTLS with the trust bundle and Lanyard's CRL (fetched from the server's CRL
 *    endpoint) in front of a Node upstream: a valid SVID passes, a revoked or foreign-domain one is refused;
 *  - a Node hop client talks to `openssl s_server -Verify` (which requires and checks its certificate);
 *  - `openssl s_client` talks to a Lanyard-protected Node server (createHopTlsServer).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { ServerX509Source } from '../../../src/client/server-x509-source';
import type { X509Source } from '../../../src/client/x509-source';
import { createHopTlsServer, HopHttpsAgent, tlsClientOptions } from '../../../src/hop/tls';
import { authorizeId, authorizeOneOf, verifyX509Svid } from '../../../src/verify';
import { encodePem } from '../../../src/x509/pem';
import { startTestServer, type TestServer } from '../../support/test-server';
import { createPki, issueSvid } from '../../support/pki';
import { DecisionLog, eventually, id, pkiSource, serverBundle, TD, workloadSource } from '../../support/hop';
import { ensureNginx, startNginx, type RunningNginx } from '../../support/nginx';

/** PEM files of a source's current SVID, key 0600. */
function writeSvid(dir: string, name: string, source: X509Source): { cert: string; key: string } {
  const svid = source.getX509Svid();
  const cert = path.join(dir, `${name}.pem`);
  const key = path.join(dir, `${name}.key`);
  fs.writeFileSync(cert, svid.chain.map((c) => encodePem('CERTIFICATE', c.der)).join(''), { mode: 0o600 });
  fs.writeFileSync(key, svid.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { cert, key };
}

function request(socketPath: string, agent: https.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ socketPath, path: '/whoami', agent }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/** Runs openssl with `args`, feeding `input`; resolves with everything it printed once it exits. */
function runOpenssl(args: string[], input?: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('openssl', args);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => resolve({ code, out }));
    if (input !== undefined) p.stdin.end(input);
  });
}

describe('hop interop: nginx with the bundle and the CRL, openssl s_server and s_client', function () {
  this.timeout(60_000);
  let s: TestServer;
  let dir: string;
  let proxy: ServerX509Source;
  let caller: ServerX509Source;
  let victim: ServerX509Source;
  const agents: https.Agent[] = [];

  before(async function () {
    // A bare machine installs nginx here first (Debian package, minutes), like the Python interop tests.
    this.timeout(15 * 60_000);
    ensureNginx();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-hop-interop-'));
    s = await startTestServer({ config: { crlListenAddress: { host: '127.0.0.1', port: 0 } } });
    proxy = await workloadSource(s, 'edge-proxy');
    caller = await workloadSource(s, 'planner');
    victim = await workloadSource(s, 'compromised');
  });
  after(async () => {
    for (const a of agents) a.destroy();
    await Promise.all([proxy.close(), caller.close(), victim.close()]);
    await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('nginx terminating mTLS in front of a Node upstream', () => {
    let nginx: RunningNginx;
    let upstream: http.Server;

    before(async () => {
      // The upstream trusts nginx's verdict and reads the identity from the forwarded certificate.
      upstream = http.createServer((req, res) => {
        const pem = decodeURIComponent(String(req.headers['x-client-cert'] ?? ''));
        const der = new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
        const peer = verifyX509Svid([der], serverBundle(s));
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ spiffeId: peer.id.toString(), verify: req.headers['x-client-verify'] }));
      });
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));

      // Revoke one SVID: the CRL fetched after that lists it (built on demand).
      const serial = victim.getX509Svid().chain[0]!.serialHex;
      await s.client.revokeSvid({ serialHex: serial, reason: 'compromised' });
      const crl = await fetch(`http://${s.running.crlAddress}/crl/${TD}.pem`);
      assert.equal(crl.status, 200);

      const svid = proxy.getX509Svid();
      nginx = await startNginx(
        dir,
        {
          certPem: svid.chain.map((c) => encodePem('CERTIFICATE', c.der)).join(''),
          keyPem: svid.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
          bundlePem: s.running.ca.bundle().toPem(),
          crlPem: await crl.text(),
        },
        (upstream.address() as AddressInfo).port,
      );
    });
    after(async () => {
      await nginx?.stop();
      upstream?.close();
    });

    const agentFor = (source: X509Source): https.Agent => {
      // The client checks nginx's certificate as a Lanyard SVID with the proxy's SPIFFE ID.
      const a = new HopHttpsAgent({ source, authorize: authorizeId(id('edge-proxy')), caTrustDomains: [TD] });
      agents.push(a);
      return a;
    };

    it('a valid SVID passes and the upstream reads its SPIFFE ID', async () => {
      const r = await request(nginx.socketPath, agentFor(caller));
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(JSON.parse(r.body), { spiffeId: id('planner'), verify: 'SUCCESS' });
    });

    it('a revoked SVID is refused by nginx from the CRL', async () => {
      const r = await request(nginx.socketPath, agentFor(victim));
      assert.equal(r.status, 400);
      assert.match(r.body, /SSL certificate error/);
      assert.match(nginx.errorLog(), /certificate revoked/);
    });

    it('an SVID of a foreign trust domain is refused', async () => {
      const foreign = createPki('evil.test');
      const evil = pkiSource(issueSvid(foreign, 'spiffe://evil.test/planner'), [
        serverBundle(s),
        foreign.bundle,
      ]);
      const r = await request(nginx.socketPath, agentFor(evil));
      assert.equal(r.status, 400);
      assert.match(r.body, /SSL certificate error/);
    });

    it('no client certificate is refused', async () => {
      const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        https
          .get(
            {
              socketPath: nginx.socketPath,
              path: '/',
              ca: serverBundle(s).toPem(),
              checkServerIdentity: () => undefined,
            },
            (res) => {
              let body = '';
              res.on('data', (d: Buffer) => (body += d.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            },
          )
          .on('error', reject);
      });
      assert.equal(r.status, 400);
      assert.match(r.body, /No required SSL certificate was sent/);
    });
  });

  describe('openssl s_server -Verify with a Node hop client', () => {
    let server: ChildProcess;
    let port: number;
    let output = '';

    before(async () => {
      const files = writeSvid(dir, 'sserver', proxy);
      const bundle = path.join(dir, 's_server-bundle.pem');
      fs.writeFileSync(bundle, s.running.ca.bundle().toPem());
      // -Verify: a client certificate is required and must chain to the bundle; -www answers with a status page.
      server = spawn('openssl', [
        's_server',
        '-accept',
        '127.0.0.1:0',
        '-cert',
        files.cert,
        '-key',
        files.key,
        '-CAfile',
        bundle,
        '-Verify',
        '2',
        '-verify_return_error',
        '-www',
      ]);
      server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const until = Date.now() + 10_000;
      while (!/ACCEPT 127\.0\.0\.1:(\d+)/.test(output)) {
        assert.ok(Date.now() < until, `s_server did not start: ${output}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      port = Number(/ACCEPT 127\.0\.0\.1:(\d+)/.exec(output)![1]);
    });
    after(() => server.kill());

    const get = (source: X509Source, expect: string): Promise<{ error?: Error; body: string }> =>
      new Promise((resolve) => {
        const out: { error?: Error; body: string } = { body: '' };
        const socket = tls.connect({
          host: '127.0.0.1',
          port,
          ...tlsClientOptions({ source, authorize: authorizeId(expect), caTrustDomains: [TD] }),
        });
        socket.on('secureConnect', () => socket.write('GET / HTTP/1.0\r\n\r\n'));
        socket.on('data', (d: Buffer) => (out.body += d.toString()));
        socket.on('error', (e) => (out.error ??= e));
        socket.on('close', () => resolve(out));
      });

    it("the Node client verifies OpenSSL's server as a Lanyard SVID, and OpenSSL accepts the client SVID", async () => {
      const r = await get(caller, id('edge-proxy'));
      assert.equal(r.error, undefined);
      assert.match(r.body, /HTTP\/1\.0 200 ok/);
      // s_server's status page names the client certificate it verified.
      assert.match(r.body, /Client certificate/i);
    });

    it('the Node client refuses the OpenSSL server when it is not the SPIFFE ID it expects', async () => {
      const r = await get(caller, id('someone-else'));
      assert.ok(r.error);
      assert.equal((r.error as Error & { code?: string }).code, 'ERR_UNAUTHORIZED');
      assert.equal(r.body, '');
    });

    it('OpenSSL refuses a client of a foreign trust domain', async () => {
      const foreign = createPki('evil.test');
      const evil = pkiSource(issueSvid(foreign, 'spiffe://evil.test/planner'), [
        serverBundle(s),
        foreign.bundle,
      ]);
      const r = await get(evil, id('edge-proxy'));
      assert.doesNotMatch(r.body, /200 ok/);
      await eventually(
        () => /unable to get local issuer certificate|verify error/.test(output),
        10_000,
        's_server refusing',
      );
    });
  });

  describe('openssl s_client against a Lanyard-protected Node server', () => {
    let server: tls.Server;
    let port: number;
    const decisions = new DecisionLog();

    before(async () => {
      server = createHopTlsServer(
        {
          source: proxy,
          revocation: proxy.revocations,
          authorize: authorizeOneOf(id('planner')),
          onDecision: decisions.listener,
        },
        (socket, peer) => socket.end(`hello ${peer.spiffeId}\n`),
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as AddressInfo).port;
    });
    after(() => server.close());

    const sClient = (extra: string[]): Promise<{ code: number | null; out: string }> => {
      const bundle = path.join(dir, 's_client-bundle.pem');
      fs.writeFileSync(bundle, s.running.ca.bundle().toPem());
      return runOpenssl(
        [
          's_client',
          '-connect',
          `127.0.0.1:${port}`,
          '-CAfile',
          bundle,
          '-verify_return_error',
          '-quiet',
          ...extra,
        ],
        '',
      );
    };

    it('OpenSSL with a valid SVID gets through and the server names it', async () => {
      const files = writeSvid(dir, 'sclient', caller);
      const r = await sClient(['-cert', files.cert, '-key', files.key]);
      assert.match(r.out, new RegExp(`hello ${id('planner')}`));
    });

    it('OpenSSL without a certificate, or with a revoked one, is refused unread', async () => {
      const none = await sClient([]);
      assert.doesNotMatch(none.out, /hello/);
      await decisions.next((d) => d.reason === 'ERR_CLIENT_CERT_REQUIRED');
      const files = writeSvid(dir, 'victim', victim);
      const revoked = await sClient(['-cert', files.cert, '-key', files.key]);
      assert.doesNotMatch(revoked.out, /hello/);
      const d = await decisions.next((x) => x.peerId === id('compromised'));
      assert.equal(d.reason, 'ERR_REVOKED');
    });
  });
});
