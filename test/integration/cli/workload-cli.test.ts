/**
 * The Workload API conventions of the client side, against a real server and a real `lanyard agent run`:
 * SPIFFE_ENDPOINT_SOCKET finds the socket when no flag does (agent fetch x509 | jwt | bundle, agent
 * healthcheck, WorkloadApiX509Source.connect()), bad addresses are refused with the reason, and the agent
 * answers grpc.health.v1 on its socket.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateJwtSvid } from '../../../src/agent/jwt-svid';
import { parseSpiffeBundle, X509Bundle } from '../../../src/bundle';
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE } from '../../../src/cli/exit-codes';
import { parseX509Svid } from '../../../src/svid/x509-svid';
import { WorkloadApiX509Source } from '../../../src/client/workload-api-source';
import { SPIFFE_ENDPOINT_SOCKET, workloadEndpointUri } from '../../../src/client/workload-endpoint';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { agentContextToJson } from '../../../src/x509/agent-context';
import { decodePemBlocks } from '../../../src/x509/pem';
import { startTestServer, type TestServer } from '../../support/test-server';
import { runCli, type CliResult, cliOk } from '../../support/server-process';
import { AGENT_ID, TD, tempDir, spawnAgent, type AgentProcess } from '../../support/agent';

const WORKLOAD_ID = `spiffe://${TD}/workload/env-reader`;
const td = TrustDomain.parse(TD);

/** The CLI with nothing inherited that picks a socket: only what the test sets. */
const lanyard = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> =>
  runCli(args, { [SPIFFE_ENDPOINT_SOCKET]: '', ...env });

const ok = cliOk;

describe('Workload API conventions: SPIFFE_ENDPOINT_SOCKET, agent fetch, agent healthcheck', function () {
  this.timeout(120_000);
  let s: TestServer;
  let dir: string;
  let agent: AgentProcess;
  let socket: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    s = await startTestServer();
    dir = tempDir();
    socket = path.join(dir, 'agent.sock');
    env = { [SPIFFE_ENDPOINT_SOCKET]: `unix://${socket}` };
    await s.client.createEntry({
      entry: { spiffeId: AGENT_ID, selectors: [{ type: 'node', value: 'name:env' }] },
    });
    await s.client.createEntry({
      entry: {
        spiffeId: WORKLOAD_ID,
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
      },
    });
    const { token } = await s.client.createJoinToken({ spiffeId: AGENT_ID });
    fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'bundle.pem'), s.running.ca.bundle().toPem());
    agent = spawnAgent({
      server: s.running.publicAddress,
      bundleFile: path.join(dir, 'bundle.pem'),
      socketPath: socket,
      tokenFile: path.join(dir, 'token'),
      extra: ['--data-dir', path.join(dir, 'agent-data'), '--sync-interval', '1s'],
    });
    await agent.ready;
    // Serving once the agent holds the server's bundle: wait for that before the fetches.
    const deadline = Date.now() + 60_000;
    while ((await lanyard(['agent', 'healthcheck', '--socket', socket])).code !== EXIT_OK) {
      if (Date.now() > deadline) throw new Error(`the agent never became healthy:\n${agent.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  after(async () => {
    await agent?.stop();
    await s?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the agent banner names the socket as a SPIFFE_ENDPOINT_SOCKET address', () => {
    assert.ok(
      agent.output().includes(`SPIFFE_ENDPOINT_SOCKET=${workloadEndpointUri(socket)}`),
      agent.output(),
    );
  });

  it('SPIFFE_ENDPOINT_SOCKET=unix:///… lanyard agent fetch x509, with no other flag, prints a usable SVID', async () => {
    const r = ok(await lanyard(['agent', 'fetch', 'x509'], env));
    assert.match(r.stdout, new RegExp(`^# SPIFFE ID:  ${WORKLOAD_ID}\n`));
    // The same text is the certificate file and the key file, as go-spiffe's x509svid.Load allows.
    const svid = parseX509Svid(r.stdout, r.stdout);
    assert.equal(svid.id.toString(), WORKLOAD_ID);
    assert.equal(verifyX509Svid(svid.chain, s.running.ca.bundle()).id.toString(), WORKLOAD_ID);
  });

  it('accepts the unix:/path form go-spiffe accepts', async () => {
    const r = ok(await lanyard(['agent', 'fetch', 'x509'], { [SPIFFE_ENDPOINT_SOCKET]: `unix:${socket}` }));
    assert.equal(parseX509Svid(r.stdout, r.stdout).id.toString(), WORKLOAD_ID);
  });

  it('agent fetch x509 --json: certificates, key, bundle and validity, consistent with each other', async () => {
    const r = ok(await lanyard(['agent', 'fetch', 'x509', '--json'], env));
    const doc = JSON.parse(r.stdout) as {
      spiffeId: string;
      notAfter: string;
      certificates: string;
      key: string;
      bundle: string;
      context: unknown;
    };
    assert.equal(doc.spiffeId, WORKLOAD_ID);
    const svid = parseX509Svid(doc.certificates, doc.key);
    assert.equal(svid.notAfter.toISOString(), doc.notAfter);
    const bundle = X509Bundle.fromPem(td, doc.bundle);
    assert.equal(verifyX509Svid(svid.chain, bundle).id.toString(), WORKLOAD_ID);
    // A workload SVID from the agent carries the agent context; the JSON form shows it as svid inspect does.
    assert.deepEqual(doc.context, agentContextToJson(svid.context!));
  });

  it('--socket wins over SPIFFE_ENDPOINT_SOCKET', async () => {
    const r = ok(
      await lanyard(['agent', 'fetch', 'x509', '--socket', socket], {
        [SPIFFE_ENDPOINT_SOCKET]: 'unix:///nonexistent/agent.sock',
      }),
    );
    assert.equal(parseX509Svid(r.stdout, r.stdout).id.toString(), WORKLOAD_ID);
  });

  it('agent fetch jwt --audience prints a token that verifies with the bundle from agent fetch bundle --format jwks', async () => {
    const token = ok(
      await lanyard(['agent', 'fetch', 'jwt', '--audience', 'api.example'], env),
    ).stdout.trim();
    assert.equal(token.split('.').length, 3);
    const jwks = ok(await lanyard(['agent', 'fetch', 'bundle', '--format', 'jwks'], env)).stdout;
    const bundle = parseSpiffeBundle(td, jwks);
    assert.ok(bundle.jwtAuthorities.size >= 1 && bundle.x509Authorities.length >= 1);
    const v = validateJwtSvid(token, 'api.example', (t) => (t.equals(td) ? bundle : undefined), new Date());
    assert.equal(v.spiffeId.toString(), WORKLOAD_ID);
    assert.throws(() => validateJwtSvid(token, 'other', () => bundle, new Date()), /audience/);

    const json = JSON.parse(
      ok(await lanyard(['agent', 'fetch', 'jwt', '--audience', 'a', '--audience', 'b', '--json'], env))
        .stdout,
    ) as { svids: { spiffeId: string; token: string; audience: string[]; expiresAt: string }[] };
    assert.equal(json.svids[0]!.spiffeId, WORKLOAD_ID);
    assert.deepEqual(json.svids[0]!.audience, ['a', 'b']);
    assert.ok(new Date(json.svids[0]!.expiresAt).getTime() > Date.now());
  });

  it('agent fetch jwt / x509 for an ID the workload is not entitled to is refused (exit 1)', async () => {
    const r = await lanyard(
      ['agent', 'fetch', 'jwt', '--audience', 'x', '--spiffe-id', `spiffe://${TD}/workload/someone-else`],
      env,
    );
    assert.equal(r.code, EXIT_REJECTED, r.stderr);
    assert.match(r.stderr, /ERR_NOT_ENTITLED/);
    // fetch x509 waits for an SVID it may yet get, then says what it last heard.
    const x509 = await lanyard(
      ['agent', 'fetch', 'x509', '--spiffe-id', `spiffe://${TD}/workload/someone-else`, '--timeout', '2s'],
      env,
    );
    assert.equal(x509.code, EXIT_REJECTED, x509.stderr);
    assert.match(
      x509.stderr,
      /ERR_SOURCE_NOT_READY: .* in time: last error: .*sent no SVID for spiffe:\/\/lanyard\.local\/workload\/someone-else/,
    );
  });

  it('agent fetch bundle prints the PEM CA certificates of the trust domain', async () => {
    const pem = ok(await lanyard(['agent', 'fetch', 'bundle'], env)).stdout;
    assert.deepEqual(
      decodePemBlocks(pem, 'CERTIFICATE').map((d) => Buffer.from(d).toString('hex')),
      s.running.ca.bundle().x509Authorities.map((c) => Buffer.from(c.der).toString('hex')),
    );
    const other = await lanyard(['agent', 'fetch', 'bundle', '--trust-domain', 'other.example'], env);
    assert.equal(other.code, EXIT_REJECTED);
    assert.match(other.stderr, /no bundle for other\.example/);
  });

  it('WorkloadApiX509Source.connect() with no options reads SPIFFE_ENDPOINT_SOCKET', async () => {
    const saved = process.env[SPIFFE_ENDPOINT_SOCKET];
    process.env[SPIFFE_ENDPOINT_SOCKET] = `unix://${socket}`;
    let source: WorkloadApiX509Source | undefined;
    try {
      source = await WorkloadApiX509Source.connect();
      assert.equal(source.socketPath, socket);
      assert.equal(source.getX509Svid().id.toString(), WORKLOAD_ID);
      process.env[SPIFFE_ENDPOINT_SOCKET] = 'tcp://127.0.0.1:8081';
      await assert.rejects(WorkloadApiX509Source.connect(), {
        code: 'ERR_INVALID_CONFIG',
        message: /scheme "tcp" is not supported/,
      });
      delete process.env[SPIFFE_ENDPOINT_SOCKET];
      await assert.rejects(WorkloadApiX509Source.connect(), {
        code: 'ERR_INVALID_CONFIG',
        message: /SPIFFE_ENDPOINT_SOCKET/,
      });
    } finally {
      await source?.close();
      if (saved === undefined) delete process.env[SPIFFE_ENDPOINT_SOCKET];
      else process.env[SPIFFE_ENDPOINT_SOCKET] = saved;
    }
  });

  // Every address rule is covered by test/client/workload-endpoint.test.ts; here, that the CLI reports them.
  it('refuses a SPIFFE_ENDPOINT_SOCKET that is not a unix: URI, or none at all, with the reason (exit 2)', async () => {
    const tcp = await lanyard(['agent', 'fetch', 'x509'], {
      [SPIFFE_ENDPOINT_SOCKET]: 'tcp://127.0.0.1:8081',
    });
    assert.equal(tcp.code, EXIT_USAGE, tcp.stderr);
    assert.match(
      tcp.stderr,
      /SPIFFE_ENDPOINT_SOCKET "tcp:\/\/127\.0\.0\.1:8081": the scheme "tcp" is not supported/,
    );
    const none = await lanyard(['agent', 'fetch', 'bundle']);
    assert.equal(none.code, EXIT_USAGE);
    assert.match(none.stderr, /set SPIFFE_ENDPOINT_SOCKET=unix:\/\/\//);
  });

  it('agent healthcheck: exit 0 and SERVING through SPIFFE_ENDPOINT_SOCKET; --json says so too', async () => {
    assert.match(ok(await lanyard(['agent', 'healthcheck'], env)).stdout, /agent is healthy \(SERVING/);
    const doc = JSON.parse(ok(await lanyard(['agent', 'healthcheck', '--json'], env)).stdout) as {
      status: string;
    };
    assert.equal(doc.status, 'SERVING');
  });
});

describe('agent healthcheck when the agent is not serving', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = tempDir();
    fs.writeFileSync(path.join(dir, 'token'), 'unused-token', { mode: 0o600 });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('NOT_SERVING (exit 1) while the agent has not reached its server; not running (exit 1) once stopped', async () => {
    const s = await startTestServer();
    const bundleFile = path.join(dir, 'bundle.pem');
    fs.writeFileSync(bundleFile, s.running.ca.bundle().toPem());
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    const socket = path.join(dir, 'lonely.sock');
    // Nothing listens on port 1: the agent runs, keeps retrying, and has no bundle from a server.
    const agent = spawnAgent({
      server: '127.0.0.1:1',
      bundleFile,
      socketPath: socket,
      tokenFile: path.join(dir, 'token'),
    });
    try {
      await agent.ready;
      const r = await lanyard(['agent', 'healthcheck', '--socket', socket]);
      assert.equal(r.code, EXIT_REJECTED, r.stdout);
      assert.match(r.stderr, /agent is not healthy: NOT_SERVING/);
      const json = await lanyard(['agent', 'healthcheck', '--socket', socket, '--json']);
      assert.equal(json.code, EXIT_REJECTED);
      assert.equal((JSON.parse(json.stdout) as { status: string }).status, 'NOT_SERVING');
    } finally {
      await agent.stop();
    }
    const gone = await lanyard(['agent', 'healthcheck'], { [SPIFFE_ENDPOINT_SOCKET]: `unix://${socket}` });
    assert.equal(gone.code, EXIT_REJECTED);
    assert.match(gone.stderr, /agent is not running: no socket at/);
  });
});
