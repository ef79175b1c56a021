/**
 * Prometheus metrics end to end: a real server and a real node agent with metrics on, real issuance, sessions,
 * delegation and revocation, then Debian's Prometheus scraping both, every value read back through its HTTP
 * API; and `promtool check metrics` on each exposition. Off by default: a server process started without the
 * metrics block listens on nothing but its public listener.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import {
  AGENT_ID,
  startAgentFor,
  workloadClient,
  header,
  X509Stream,
  type AgentFixture,
} from '../../support/agent';
import { listeningTcpPorts } from '../../support/listening-ports';
import {
  ensurePrometheus,
  promtoolCheckMetrics,
  startPrometheus,
  type PromSample,
  type RunningPrometheus,
} from '../../support/prometheus';
import { attest, connectPublic, newKey, watchBundle } from '../../support/public-client';
import { spawnServer } from '../../support/server-process';
import {
  collectWatch,
  delegate,
  endSession,
  register,
  sessionClient,
  startSession,
  type Agent,
} from '../../support/sessions';
import { startTestServer, type TestServer } from '../../support/test-server';
import { tempDir } from '../../support/tmp';

const LOOPBACK_ANY_PORT = { host: '127.0.0.1', port: 0 };

async function scrape(address: string): Promise<string> {
  const res = await fetch(`http://${address}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Every label value of an exposition (for the cardinality check). */
function labelValues(exposition: string): string[] {
  const values: string[] = [];
  for (const line of exposition.split('\n')) {
    if (line.startsWith('#')) continue;
    for (const m of line.matchAll(/[a-zA-Z_]+="((?:[^"\\]|\\.)*)"/g)) values.push(m[1]!);
  }
  return values;
}

const one = (samples: PromSample[]): number => {
  assert.equal(samples.length, 1, JSON.stringify(samples));
  return samples[0]!.value;
};

async function refusedAttest(
  s: TestServer,
  attestorType: string,
  evidence: string,
): Promise<grpc.ServiceError> {
  const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), 'lanyard.local');
  try {
    await attest(pub.attestation, { attestorType, evidence: Buffer.from(evidence), csr: newKey().csr });
  } catch (e) {
    return e as grpc.ServiceError;
  } finally {
    pub.close();
  }
  throw new Error('the attestation was expected to be refused');
}

describe('Prometheus metrics (server and agent, scraped by a real Prometheus)', function () {
  this.timeout(240_000);

  before(function () {
    // apt-get on a bare machine can take minutes.
    this.timeout(15 * 60_000);
    ensurePrometheus();
  });

  describe('off by default', () => {
    it('a server started without the metrics block listens on its public port only', async () => {
      const dataDir = tempDir('metrics-off');
      const server = spawnServer(['--data-dir', dataDir]);
      try {
        const address = await server.ready;
        const publicPort = Number(address.split(':').pop());
        assert.deepEqual(listeningTcpPorts(server.child.pid!), [publicPort]);
        assert.doesNotMatch(server.stderr(), /Prometheus/);
      } finally {
        server.kill();
        await server.exited;
      }
    });

    it('with metrics.enabled the same server listens on 127.0.0.1:<port> too and serves /metrics there', async () => {
      const dataDir = tempDir('metrics-on');
      const config = path.join(dataDir, '..', `${path.basename(dataDir)}.yaml`);
      // Port 0 would be a free one, but the banner would then be the only way to know it: ask the kernel instead.
      fs.writeFileSync(config, 'metrics:\n  listen_address: 127.0.0.1:0\n');
      const server = spawnServer(['--config', config, '--data-dir', dataDir]);
      try {
        const address = await server.ready;
        const publicPort = Number(address.split(':').pop());
        const m = /metrics \(Prometheus\):\s+http:\/\/(127\.0\.0\.1:(\d+))\/metrics/.exec(server.stderr());
        assert.ok(m, server.stderr());
        assert.deepEqual(
          listeningTcpPorts(server.child.pid!),
          [publicPort, Number(m[2])].sort((a, b) => a - b),
        );
        assert.match(await scrape(m[1]!), /^lanyard_server_ca_ready 1$/m);
      } finally {
        server.kill();
        await server.exited;
        fs.rmSync(config, { force: true });
      }
    });

    it('an agent started without metrics has no metrics listener', async () => {
      const s = await startTestServer();
      const a = await startAgentFor(s);
      try {
        assert.equal(a.agent.metrics, undefined);
        assert.equal(a.agent.metricsAddress, undefined);
        assert.equal(s.running.metrics, undefined);
        assert.equal(s.running.metricsAddress, undefined);
      } finally {
        await a.close();
        await s.stop();
      }
    });
  });

  describe('a server and an agent at work', () => {
    let s: TestServer;
    let other: TestServer;
    let a: AgentFixture;
    let prom: RunningPrometheus;
    let watches: { cancel(): void }[] = [];
    let refusedCode = '';
    let unknownAttestorCode = '';

    before(async function () {
      this.timeout(120_000);
      s = await startTestServer({ config: { metricsListenAddress: LOOPBACK_ANY_PORT } });
      // A second server in the same process: its metrics must be its own.
      other = await startTestServer({ config: { metricsListenAddress: LOOPBACK_ANY_PORT } });
      a = await startAgentFor(s, { metrics: { listen: LOOPBACK_ANY_PORT } });

      // Issuance: the agent and three workloads attested with join tokens, two refused attestations.
      const planner = await register(s, 'planner', {
        maxDelegationDepth: 1,
        allowedDelegates: ['spiffe://lanyard.local/worker'],
      });
      const worker = await register(s, 'worker', { maxDelegationDepth: 1 });
      await register(s, 'spare');
      const refused = await refusedAttest(s, 'join_token', 'not-a-token');
      refusedCode = String(refused.metadata.get(ERROR_CODE_METADATA_KEY)[0]);
      const unknown = await refusedAttest(s, 'made-up-attestor', 'x');
      unknownAttestorCode = String(unknown.metadata.get(ERROR_CODE_METADATA_KEY)[0]);

      // Sessions: two started, one delegated from the first; then the first ended (its child by cascade).
      const root = await startSession(s, planner, { scopes: [] });
      await startSession(s, worker, { scopes: [] });
      const rootId = root.res.sessionId;
      await delegate(s, root.agent, worker, []);
      await endSession(s, planner, rootId, 'task done');

      // Streams held open while Prometheus scrapes: one WatchRevocations, one WatchBundle.
      const sc = sessionClient(s, planner as Agent);
      const revocationWatch = collectWatch(sc, 0, () => false);
      revocationWatch.catch(() => undefined);
      watches.push({ cancel: () => sc.close() });
      const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), 'lanyard.local');
      const bundleWatch = watchBundle(pub);
      await bundleWatch.next(1);
      watches.push({ cancel: () => (bundleWatch.cancel(), pub.close()) });

      // The agent: a workload entry under it, synced, and a Workload API client that gets its SVID.
      await s.client.createEntry({
        entry: {
          spiffeId: 'spiffe://lanyard.local/wl/metrics',
          parentId: AGENT_ID,
          selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
        },
      });
      await a.agent.sync.syncNow();
      const wl = workloadClient(a.socketPath);
      const stream = new X509Stream(wl, header());
      await stream.next();
      stream.call.cancel();
      wl.close();

      prom = await startPrometheus(tempDir('prometheus'), {
        'lanyard-server': s.running.metricsAddress!,
        'lanyard-agent': a.agent.metricsAddress!,
      });
      await prom.until('up == 1', (r) => r.length === 2);
    });

    after(async () => {
      for (const w of watches) w.cancel();
      watches = [];
      await prom?.stop();
      await a?.close();
      await s?.stop();
      await other?.stop();
    });

    it('counts issuance by method, attestor and outcome, and a refused call with its error code', async () => {
      assert.match(refusedCode, /^ERR_/);
      assert.equal(
        one(
          await prom.until(
            'lanyard_server_issuance_total{method="Attest",attestor="join_token",outcome="issued"}',
            (r) => r[0]?.value === 4,
          ),
        ),
        4,
      );
      assert.equal(
        one(
          await prom.query(
            `lanyard_server_issuance_total{method="Attest",attestor="join_token",outcome="refused",error_code="${refusedCode}"}`,
          ),
        ),
        1,
      );
      // An attestor the server does not have cannot become a label value of its own.
      assert.equal(
        one(
          await prom.query(
            `lanyard_server_issuance_total{method="Attest",attestor="unknown",outcome="refused",error_code="${unknownAttestorCode}"}`,
          ),
        ),
        1,
      );
      assert.deepEqual(await prom.query('lanyard_server_issuance_total{attestor="made-up-attestor"}'), []);
      assert.equal(
        one(await prom.query('lanyard_server_issuance_total{method="StartSession",outcome="issued"}')),
        2,
      );
      assert.equal(
        one(await prom.query('lanyard_server_issuance_total{method="RedeemGrant",outcome="issued"}')),
        1,
      );
      // The agent's sync asked for its workload's SVID.
      assert.ok(
        one(await prom.query('lanyard_server_issuance_total{method="BatchNewX509Svid",outcome="issued"}')) >=
          1,
      );
    });

    it('counts every RPC by status and error code, and times it', async () => {
      const refusedAttests = await prom.query(
        `lanyard_grpc_server_handled_total{job="lanyard-server",listener="public",grpc_service="lanyard.v1.AttestationService",grpc_method="Attest",error_code="${refusedCode}"}`,
      );
      assert.equal(one(refusedAttests), 1);
      assert.notEqual(refusedAttests[0]!.metric.grpc_code, 'OK');
      // One histogram observation per call: OK (the agent's and three workloads') and refused attestations alike.
      assert.equal(
        one(
          await prom.query(
            'lanyard_grpc_server_handling_seconds_count{job="lanyard-server",grpc_method="Attest"}',
          ),
        ),
        6,
      );
      // The admin socket's calls (entries, tokens) are measured too, under their own listener.
      assert.ok(
        one(
          await prom.query(
            'sum(lanyard_grpc_server_handled_total{listener="admin",grpc_method="CreateJoinToken",grpc_code="OK"})',
          ),
        ) >= 4,
      );
      // The Workload API's streams on the agent.
      assert.ok(
        (
          await prom.query(
            'lanyard_grpc_server_handled_total{job="lanyard-agent",listener="workload-api",grpc_method="FetchX509SVID"}',
          )
        ).length >= 1,
      );
    });

    it('reports open WatchRevocations and WatchBundle streams', async () => {
      assert.equal(
        one(
          await prom.until(
            'lanyard_grpc_server_streams_open{grpc_method="WatchRevocations"}',
            (r) => r[0]?.value === 1,
          ),
        ),
        1,
      );
      assert.equal(one(await prom.query('lanyard_grpc_server_streams_open{grpc_method="WatchBundle"}')), 1);
    });

    it('reports sessions and revocations: direct and by cascade', async () => {
      // planner's root session ended with its delegated child; worker's own session is live.
      assert.equal(one(await prom.query('lanyard_server_sessions_active')), 1);
      assert.equal(
        one(
          await prom.query('lanyard_server_revocations_total{kind="session",cause="direct",origin="local"}'),
        ),
        1,
      );
      assert.equal(
        one(
          await prom.query('lanyard_server_revocations_total{kind="session",cause="cascade",origin="local"}'),
        ),
        1,
      );
      assert.equal(one(await prom.query('lanyard_server_revocation_sequence')), 2);
    });

    it('reports the CA state, time to expiry and bundle sequence as the server holds them', async () => {
      assert.equal(one(await prom.query('lanyard_server_ca_ready')), 1);
      assert.equal(one(await prom.query('lanyard_server_ca_authorities{state="active"}')), 1);
      const active = s.running.ca.authorities().find((x) => x.state === 'active')!;
      const expiry = one(await prom.query('lanyard_server_ca_expiry_seconds{state="active"}'));
      const left = (active.notAfter.getTime() - Date.now()) / 1000;
      // Read at the last scrape, a second or so ago: between what is left now and what was left a minute ago.
      assert.ok(expiry >= left && expiry <= left + 60, `${expiry} vs ${left}`);
      assert.equal(one(await prom.query('lanyard_server_bundle_sequence')), s.running.ca.bundle().sequence);
      assert.equal(one(await prom.query('lanyard_agent_bundle_sequence')), s.running.ca.bundle().sequence);
    });

    it("reports audit append latency and the chain head's sequence", async () => {
      const head = (await s.running.store.audit.head(s.running.audit.chain)).seq;
      assert.ok(head > 0);
      assert.equal(
        one(await prom.until('lanyard_server_audit_chain_head_sequence', (r) => r[0]?.value === head)),
        head,
      );
      assert.ok(one(await prom.query('sum(lanyard_server_audit_append_seconds_count)')) >= head);
      assert.equal(one(await prom.query('sum(lanyard_server_audit_append_failures_total)')), 0);
    });

    it("reports the agent's cache", async () => {
      assert.equal(one(await prom.query('lanyard_agent_cache_items{kind="entries"}')), 1);
      assert.equal(one(await prom.query('lanyard_agent_cache_items{kind="x509_svids"}')), 1);
      assert.ok(one(await prom.query('lanyard_agent_syncs_total{outcome="ok"}')) >= 1);
      assert.equal(one(await prom.query('lanyard_agent_syncs_total{outcome="failed"}')), 0);
      assert.ok(one(await prom.query('lanyard_agent_svid_expiry_seconds')) > 0);
    });

    it('reports Node process metrics for both', async () => {
      const cpu = await prom.query('process_cpu_seconds_total');
      assert.deepEqual(cpu.map((r) => r.metric.job).sort(), ['lanyard-agent', 'lanyard-server']);
      assert.equal((await prom.query('nodejs_heap_size_total_bytes')).length, 2);
    });

    it('passes promtool check metrics on both expositions', async () => {
      for (const address of [s.running.metricsAddress!, a.agent.metricsAddress!]) {
        const result = promtoolCheckMetrics(await scrape(address));
        assert.equal(result.status, 0, result.output);
      }
    });

    it('labels nothing with a SPIFFE ID, a session id or a serial', async () => {
      const values = [
        ...labelValues(await scrape(s.running.metricsAddress!)),
        ...labelValues(await scrape(a.agent.metricsAddress!)),
      ];
      assert.ok(values.length > 50);
      for (const v of values) {
        assert.doesNotMatch(v, /spiffe:\/\//);
        assert.doesNotMatch(v, /[0-9a-f]{16,}/i, v);
      }
    });

    it('keeps a second server in the same process apart: its own registry, none of the first one’s counts', async () => {
      assert.notEqual(other.running.metrics!.registry, s.running.metrics!.registry);
      const text = await scrape(other.running.metricsAddress!);
      assert.doesNotMatch(text, /^lanyard_server_issuance_total\{/m);
      assert.match(text, /^lanyard_server_sessions_active 0$/m);
      assert.match(text, /^process_cpu_seconds_total /m);
    });

    it("counts the agent's failed syncs once the server is gone", async () => {
      for (const w of watches) w.cancel();
      watches = [];
      await s.stop();
      await a.agent.sync.syncNow();
      assert.ok(
        one(
          await prom.until('lanyard_agent_syncs_total{outcome="failed"}', (r) => (r[0]?.value ?? 0) >= 1),
        ) >= 1,
      );
      assert.ok(one(await prom.query('lanyard_agent_sync_consecutive_failures')) >= 1);
      // The server's target is down now: Prometheus says so.
      assert.equal(one(await prom.until('up{job="lanyard-server"}', (r) => r[0]?.value === 0)), 0);
    });
  });
});
