/**
 * Clients that survive the loss of a server: ServerX509Source, `lanyard svid fetch` and `lanyard agent run` given
 * several servers of one PostgreSQL database (a list, or a DNS name resolving to several) move to the next when
 * one is unavailable, and never offer a refused request to another server.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { grantFor, redeemGrant, startSession as startTaskSession } from '../../../src/client/handoff';
import { HandoffKey } from '../../../src/client/handoff-keys';
import { ServerX509Source } from '../../../src/client/server-x509-source';
import { ErrorCode } from '../../../src/errors';
import { verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { decodePemBlocks } from '../../../src/x509/pem';
import { AGENT_ID, spawnAgent, waitFor } from '../../support/agent';
import { startDnsServer, type TestDnsServer } from '../../support/dns-server';
import { activeRootOf, rootsOf, startSharedServer, unionBundle } from '../../support/ha';
import { usePostgresDatabase } from '../../support/postgres-cluster';
import { runCli } from '../../support/server-process';
import { startTestServer, type TestServer } from '../../support/test-server';
import { tempDir } from '../../support/tmp';
import { endSession, id, register, startSession } from '../../support/sessions';

/** host:port where nothing listens (bound, then released). */
async function deadAddress(host = '127.0.0.1'): Promise<string> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, host, resolve));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return `${host}:${port}`;
}

/** Whether the server's own CA issued `chain` (leaf first). */
function issuedBy(chain: readonly Uint8Array[], s: TestServer): boolean {
  const root = activeRootOf(s);
  return chain.some((d) => ParsedCertificate.fromDer(d).isSignedBy(root));
}

describe('clients failing over between servers of one database', function () {
  this.timeout(180_000);
  const servers: TestServer[] = [];

  const pg = usePostgresDatabase('failover', {
    beforeDrop: async () => {
      for (const s of servers.splice(0)) await s.stop().catch(() => undefined);
    },
  });

  async function shared(
    n: number,
    config: Parameters<typeof startSharedServer>[2] = {},
  ): Promise<TestServer[]> {
    const started: TestServer[] = [];
    for (let i = 0; i < n; i++) {
      const s = await startSharedServer(pg.cluster, pg.database, config);
      servers.push(s);
      started.push(s);
    }
    await waitFor(() => started.every((s) => rootsOf(s).size === n));
    return started;
  }

  async function joinToken(s: TestServer, name: string, ttl?: number): Promise<string> {
    const existing = await s.client.listEntries({ filter: { spiffeIdPrefix: id(name) } });
    if (existing.entries.length === 0) {
      await s.client.createEntry({
        entry: {
          spiffeId: id(name),
          selectors: [{ type: 'unix', value: `name:${name}` }],
          ...(ttl !== undefined ? { x509SvidTtlSeconds: ttl } : {}),
        },
      });
    }
    return (await s.client.createJoinToken({ spiffeId: id(name) })).token;
  }

  describe('ServerX509Source', () => {
    it('renews and keeps its revocation feed through another server when its own is lost', async () => {
      const [a, b] = await shared(2);
      const source = await ServerX509Source.start({
        server: [a!.running.publicAddress, b!.running.publicAddress],
        bundle: a!.running.ca.bundle(),
        attestorType: 'join_token',
        evidence: Buffer.from(await joinToken(a!, 'survivor')),
        retry: { initialMs: 100, maxMs: 500 },
      });
      try {
        assert.ok(
          issuedBy(
            source.getX509Svid().chain.map((c) => c.der),
            a!,
          ),
          'attested on the first server',
        );
        await a!.stop();
        const before = source.getX509Svid().chain[0]!.serialHex;
        await source.renewNow();
        const after = source.getX509Svid();
        assert.notEqual(after.chain[0]!.serialHex, before);
        assert.ok(
          issuedBy(
            after.chain.map((c) => c.der),
            b!,
          ),
          'renewed by the second server',
        );
        verifyX509Svid(
          after.chain.map((c) => c.der),
          b!.running.ca.bundle(),
        );
        // The revocation feed reconnects to B and hears what B records.
        const planner = await register(b!, 'planner');
        const { agent: session, res } = await startSession(b!, planner, { scopes: [] });
        const seq = source.revocations.sequence;
        await endSession(b!, session, res.sessionId, 'done');
        await waitFor(() => source.revocations.sequence > seq, 20_000);
      } finally {
        await source.close();
      }
    });

    it('attests through the second server when the first is not there', async () => {
      const [b] = await shared(1);
      const source = await ServerX509Source.start({
        server: [await deadAddress(), b!.running.publicAddress],
        bundle: b!.running.ca.bundle(),
        attestorType: 'join_token',
        evidence: Buffer.from(await joinToken(b!, 'late')),
      });
      try {
        assert.equal(source.getX509Svid().id.toString(), id('late'));
      } finally {
        await source.close();
      }
    });

    it('does not offer a refused join token to the next server', async () => {
      // `other` is a server of another database: it does not know the token and refuses it. Had the source
      // tried B after that refusal, B (which issued the token) would have accepted it.
      const [b] = await shared(1);
      const other = await startTestServer();
      servers.push(other);
      const token = await joinToken(b!, 'refused');
      await assert.rejects(
        ServerX509Source.start({
          server: [other.running.publicAddress, b!.running.publicAddress],
          bundle: unionBundle([other, b!]),
          attestorType: 'join_token',
          evidence: Buffer.from(token),
        }),
        (e: { code: number; metadata: { get(k: string): unknown[] } }) =>
          e.metadata.get('lanyard-error-code')[0] === ErrorCode.TOKEN_INVALID,
      );
      // B never saw it: the token is still unspent there.
      const source = await ServerX509Source.start({
        server: b!.running.publicAddress,
        bundle: b!.running.ca.bundle(),
        attestorType: 'join_token',
        evidence: Buffer.from(token),
      });
      await source.close();
    });

    it('does not retry a spent token on the other servers of the database', async () => {
      const [a, b] = await shared(2);
      const token = await joinToken(a!, 'spent');
      const first = await ServerX509Source.start({
        server: a!.running.publicAddress,
        bundle: a!.running.ca.bundle(),
        attestorType: 'join_token',
        evidence: Buffer.from(token),
      });
      await first.close();
      await assert.rejects(
        ServerX509Source.start({
          server: [b!.running.publicAddress, a!.running.publicAddress],
          bundle: b!.running.ca.bundle(),
          attestorType: 'join_token',
          evidence: Buffer.from(token),
        }),
        (e: { metadata: { get(k: string): unknown[] } }) =>
          e.metadata.get('lanyard-error-code')[0] === ErrorCode.TOKEN_SPENT,
      );
    });

    it('starts, hands off and renews a task session through another server when its own is lost', async () => {
      const [a, b] = await shared(2);
      const servers = [a!.running.publicAddress, b!.running.publicAddress];
      await a!.client.createEntry({
        entry: {
          spiffeId: id('lead'),
          selectors: [{ type: 'unix', value: 'name:lead' }],
          allowedDelegates: [id('helper')],
          maxDelegationDepth: 1,
        },
      });
      const source = (name: string, token: string): Promise<ServerX509Source> =>
        ServerX509Source.start({
          server: servers,
          bundle: a!.running.ca.bundle(),
          attestorType: 'join_token',
          evidence: Buffer.from(token),
          retry: { initialMs: 100, maxMs: 500 },
        });
      const lead = await source('lead', (await a!.client.createJoinToken({ spiffeId: id('lead') })).token);
      const helper = await source('helper', await joinToken(a!, 'helper'));
      try {
        const session = await startTaskSession({ source: lead, server: servers, ttlSeconds: 600 });
        assert.ok(
          issuedBy(
            session.getX509Svid().chain.map((c) => c.der),
            a!,
          ),
          'started on the first server',
        );
        await a!.stop();
        // The session source renews through B; the handoff calls reach B past the dead A.
        await session.renewNow();
        assert.ok(
          issuedBy(
            session.getX509Svid().chain.map((c) => c.der),
            b!,
          ),
          'renewed by the second server',
        );
        const key = HandoffKey.generate();
        const grant = await grantFor({
          source: session,
          server: servers,
          childId: id('helper'),
          childKey: key.id,
          scopes: [],
        });
        const delegated = await redeemGrant({ source: helper, server: servers, key });
        const context = verifyX509Svid(
          delegated.getX509Svid().chain.map((c) => c.der),
          b!.running.ca.bundle(),
        ).context!;
        assert.equal(context.delegation.at(-1)?.sessionId, session.sessionId);
        assert.equal(grant.grantId, key.id);
        await delegated.close();
        await session.close();
      } finally {
        await lead.close();
        await helper.close();
      }
    });

    describe('with a DNS name resolving to several servers', () => {
      let dns: TestDnsServer;
      before(async () => {
        dns = await startDnsServer();
      });
      after(() => dns.close());

      it('fails over between the addresses of the name', async () => {
        // Two servers on one port of two loopback addresses: the name resolves to both.
        const first = await startSharedServer(pg.cluster, pg.database, {
          listenAddress: { host: '127.0.0.2', port: 0 },
        });
        servers.push(first);
        const port = Number(first.running.publicAddress.split(':').pop());
        const second = await startSharedServer(pg.cluster, pg.database, {
          listenAddress: { host: '127.0.0.1', port },
        });
        servers.push(second);
        await waitFor(() => rootsOf(first).size === 2 && rootsOf(second).size === 2);
        dns.set('lanyard.ha.test', ['127.0.0.2', '127.0.0.1']);
        const source = await ServerX509Source.start({
          server: `dns://${dns.address}/lanyard.ha.test:${port}`,
          bundle: first.running.ca.bundle(),
          attestorType: 'join_token',
          evidence: Buffer.from(await joinToken(first, 'named')),
        });
        try {
          const attestedBy = issuedBy(
            source.getX509Svid().chain.map((c) => c.der),
            first,
          )
            ? first
            : second;
          const other = attestedBy === first ? second : first;
          await attestedBy.stop();
          await source.renewNow();
          assert.ok(
            issuedBy(
              source.getX509Svid().chain.map((c) => c.der),
              other,
            ),
          );
          assert.ok(dns.queries >= 2, 'the name was resolved through the DNS server');
        } finally {
          await source.close();
        }
      });
    });
  });

  describe('lanyard svid fetch', () => {
    it('takes several --server flags and gets the SVID from the first that answers', async () => {
      const [b] = await shared(1);
      const dir = tempDir('svid-fetch');
      const bundleFile = path.join(dir, 'bundle.pem');
      fs.writeFileSync(bundleFile, b!.running.ca.bundle().toPem());
      const tokenFile = path.join(dir, 'token');
      fs.writeFileSync(tokenFile, await joinToken(b!, 'fetched'), { mode: 0o600 });
      const dead = await deadAddress();
      const r = await runCli([
        'svid',
        'fetch',
        '--server',
        dead,
        '--server',
        b!.running.publicAddress,
        '--bundle',
        bundleFile,
        '--join-token-file',
        tokenFile,
        '--out',
        path.join(dir, 'out'),
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`no answer from ${dead}`));
      const chain = decodePemBlocks(
        fs.readFileSync(path.join(dir, 'out', 'svid.pem'), 'utf8'),
        'CERTIFICATE',
      );
      assert.equal(ParsedCertificate.fromDer(chain[0]!).uriSans[0], id('fetched'));
    });

    it('stops at a refusal: the token is not offered to the next server', async () => {
      const [b] = await shared(1);
      const other = await startTestServer();
      servers.push(other);
      const dir = tempDir('svid-fetch');
      const bundleFile = path.join(dir, 'bundle.pem');
      fs.writeFileSync(bundleFile, unionBundle([other, b!]).toPem());
      const tokenFile = path.join(dir, 'token');
      fs.writeFileSync(tokenFile, await joinToken(b!, 'not-offered'), { mode: 0o600 });
      const args = ['svid', 'fetch', '--bundle', bundleFile, '--join-token-file', tokenFile, '--out'];
      const refused = await runCli([
        ...args,
        path.join(dir, 'refused'),
        '--server',
        other.running.publicAddress,
        '--server',
        b!.running.publicAddress,
      ]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /attestation refused/);
      assert.equal(fs.existsSync(path.join(dir, 'refused', 'svid.pem')), false);
      // The token is still good on the server that issued it.
      const ok = await runCli([...args, path.join(dir, 'ok'), '--server', b!.running.publicAddress]);
      assert.equal(ok.code, 0, ok.stderr);
    });

    it('names every server when none answers, and refuses a malformed address as a usage error', async () => {
      const dir = tempDir('svid-fetch');
      const [b] = await shared(1);
      const bundleFile = path.join(dir, 'bundle.pem');
      fs.writeFileSync(bundleFile, b!.running.ca.bundle().toPem());
      const [d1, d2] = [await deadAddress(), await deadAddress()];
      const args = ['svid', 'fetch', '--bundle', bundleFile, '--join-token', 'x', '--out', dir];
      const none = await runCli([...args, '--server', d1, '--server', d2]);
      assert.notEqual(none.code, 0);
      assert.match(none.stderr, /no Lanyard server answered/);
      assert.ok(none.stderr.includes(d1) && none.stderr.includes(d2), none.stderr);
      const bad = await runCli([...args, '--server', 'no-port']);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /--server/);
    });
  });

  describe('lanyard agent run', () => {
    it('keeps syncing through the other server when its server is lost', async () => {
      const [a, b] = await shared(2);
      await a!.client.createEntry({
        entry: { spiffeId: AGENT_ID, selectors: [{ type: 'node', value: 'name:node-1' }] },
      });
      const dir = tempDir('agent-failover');
      fs.chmodSync(dir, 0o755);
      const bundleFile = path.join(dir, 'bundle.pem');
      fs.writeFileSync(bundleFile, a!.running.ca.bundle().toPem());
      const tokenFile = path.join(dir, 'token');
      fs.writeFileSync(tokenFile, (await a!.client.createJoinToken({ spiffeId: AGENT_ID })).token, {
        mode: 0o600,
      });
      const agent = spawnAgent({
        server: [a!.running.publicAddress, b!.running.publicAddress],
        bundleFile,
        socketPath: path.join(dir, 'agent.sock'),
        tokenFile,
        extra: ['--sync-interval', '1s', '--log-level', 'debug'],
      });
      try {
        await agent.ready;
        const workload = async (name: string): Promise<void> => {
          await b!.client.createEntry({
            entry: {
              spiffeId: id(name),
              parentId: AGENT_ID,
              selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
            },
          });
        };
        await workload('before-loss');
        await waitFor(() => agent.output().includes(id('before-loss')), 30_000);
        await a!.stop();
        await workload('after-loss');
        // Only a sync with B can bring the entry created after A went away.
        await waitFor(() => agent.output().includes(id('after-loss')), 60_000);
      } finally {
        await agent.stop();
      }
    });
  });
});
