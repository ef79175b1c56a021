/**
 * agent_context.oid on a real server (127.0.0.1:0, SQLite in a temp dir): every SVID it issues (attestation,
 * sessions, delegation) carries the context under the configured OID, its own checks of callers read it there,
 * and the audit trail still names the agent. Restarted with another OID, the server refuses its callers' old
 * SVIDs with ERR_AGENT_CONTEXT_OID_MISMATCH naming both OIDs; a node agent configured with another OID than its
 * server refuses to serve the SVIDs it gets.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { WorkloadApiX509Source } from '../../../src/client/workload-api-source';
import { ErrorCode } from '../../../src/errors';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import { verifyX509Svid } from '../../../src/verify';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../../src/x509/agent-context/oid';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { parseChainText } from '../../../src/audit/jsonl';
import { AGENT_ID, startAgentFor, waitFor } from '../../support/agent';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { connectPublic, newKey, renewCall } from '../../support/public-client';
import { createGrant, id, redeemGrant, register, startSession, TD, type Agent } from '../../support/sessions';
import { rejectsGrpc } from '../../support/grpc-refusal';
import { expectRefusal } from '../../support/refusal';

const CUSTOM = '1.3.6.1.4.1.99999.42.1';

const leafOf = (a: Agent): ParsedCertificate => ParsedCertificate.fromDer(a.chain[0]!);

describe('server agent_context.oid', function () {
  this.timeout(90_000);
  const dir = tempDataDir();
  let s: TestServer;
  let planner: Agent;
  let tool: Agent;
  let plannerSession: Agent;
  let delegated: Agent;

  const start = async (agentContextOid: string): Promise<void> => {
    s = await startTestServer({ dir, config: { agentContextOid } });
  };
  before(() => start(CUSTOM));
  after(async () => {
    await s?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('issues workload, session and delegated SVIDs with the context under the configured OID only', async () => {
    planner = await register(s, 'planner', {
      allowedScopes: ['docs:read', 'tools:run'],
      maxDelegationDepth: 1,
      allowedDelegates: [id('tool-runner')],
    });
    tool = await register(s, 'tool-runner', { allowedScopes: ['docs:read'] });
    plannerSession = (await startSession(s, planner, { scopes: ['docs:read', 'tools:run'] })).agent;
    const grant = await createGrant(s, plannerSession, {
      childId: id('tool-runner'),
      scopes: ['docs:read'],
      agentContextOid: CUSTOM,
    });
    delegated = await redeemGrant(s, tool, grant);
    const bundle = s.running.ca.bundle();
    for (const agent of [planner, plannerSession, delegated]) {
      const leaf = leafOf(agent);
      assert.equal(leaf.extension(CUSTOM)?.critical, false);
      assert.equal(leaf.extension(DEFAULT_AGENT_CONTEXT_OID), undefined);
      assert.ok(verifyX509Svid(agent.chain, bundle, { agentContextOid: CUSTOM, cache: null }).context);
      // A verifier left on the default refuses them, naming both OIDs.
      expectRefusal(
        () => verifyX509Svid(agent.chain, bundle, { cache: null }),
        ErrorCode.AGENT_CONTEXT_OID_MISMATCH,
        new RegExp(`${CUSTOM.replace(/\./g, '\\.')}.*${DEFAULT_AGENT_CONTEXT_OID.replace(/\./g, '\\.')}`),
      );
    }
    const v = verifyX509Svid(delegated.chain, bundle, { agentContextOid: CUSTOM, cache: null });
    assert.equal(v.context?.delegation[0]?.spiffeId, id('planner'));
  });

  it('reads its callers under that OID (Renew) and still records the agent in the audit trail', async () => {
    const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD, planner);
    try {
      const res = await renewCall(pub, newKey().csr);
      const leaf = ParsedCertificate.fromDer(new Uint8Array(res.svid!.certChain[0]!));
      assert.ok(leaf.extension(CUSTOM) !== undefined);
    } finally {
      pub.close();
    }
    const agentId = verifyX509Svid(delegated.chain, s.running.ca.bundle(), {
      agentContextOid: CUSTOM,
      cache: null,
    }).context!.agentId;
    const audit = new AuditAdminClient(s.config.adminSocketPath);
    try {
      const records = parseChainText(`${(await audit.query('agentId', agentId)).join('\n')}\n`).records;
      assert.ok(records.some((r) => r.event === 'grant.redeem' && r.decision === 'allow'));
    } finally {
      audit.close();
    }
  });

  it('a node agent with the same OID serves the SVIDs; a workload reads its context under that OID', async () => {
    await s.client.createEntry({
      entry: {
        spiffeId: id('workload/reader'),
        parentId: AGENT_ID,
        selectors: [{ type: 'unix', value: `uid:${process.getuid!()}` }],
      },
    });
    const fixture = await startAgentFor(s, { agentContextOid: CUSTOM });
    try {
      const source = await WorkloadApiX509Source.connect({
        socketPath: fixture.socketPath,
        agentContextOid: CUSTOM,
        timeoutMs: 20_000,
      });
      try {
        const svid = source.getX509Svid();
        assert.equal(svid.id.toString(), id('workload/reader'));
        assert.ok(svid.context !== undefined);
        assert.ok(svid.chain[0]!.extension(CUSTOM) !== undefined);
      } finally {
        await source.close();
      }
      // The same SVID read by a workload left on the default OID: refused, not silently context-less.
      await assert.rejects(
        WorkloadApiX509Source.connect({ socketPath: fixture.socketPath, timeoutMs: 5_000 }),
        (e: unknown) => {
          assert.equal((e as { code?: string }).code, ErrorCode.AGENT_CONTEXT_OID_MISMATCH);
          assert.match(String((e as Error).message), /1\.3\.6\.1\.4\.1\.99999\.42\.1/);
          return true;
        },
      );
    } finally {
      await fixture.close();
    }
  });

  it('a node agent configured with another OID refuses its server: the sync fails and nothing is served', async () => {
    const fixture = await startAgentFor(s, {
      agentContextOid: DEFAULT_AGENT_CONTEXT_OID,
      agentId: `${AGENT_ID}-2`,
    });
    try {
      await waitFor(() => fixture.agent.sync.lastError !== undefined, 10_000);
      const err = fixture.agent.sync.lastError as Error & { code?: string };
      assert.equal(err.code, ErrorCode.AGENT_CONTEXT_OID_MISMATCH);
      assert.ok(err.message.includes(CUSTOM) && err.message.includes(DEFAULT_AGENT_CONTEXT_OID), err.message);
      // The agent's own SVID is checked before it asks for anything: no entry, no SVID to serve.
      assert.equal(fixture.agent.cache.entries().length, 0);
      // Refused before it is kept: nothing of it on disk for the next start to pick up.
      assert.equal(fs.existsSync(`${fixture.dir}/data/agent_svid.pem`), false);
      assert.equal(fs.existsSync(`${fixture.dir}/data/agent_svid_key.pem`), false);
      assert.ok(fixture.logs.some((l) => l.includes('sync with the server failed') && l.includes(CUSTOM)));
    } finally {
      await fixture.close();
    }
  });

  it('restarted with another OID, it refuses the SVIDs it issued before, naming both OIDs', async () => {
    await s.stop();
    await start(DEFAULT_AGENT_CONTEXT_OID);
    for (const who of [planner, plannerSession]) {
      const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD, who);
      try {
        const e = await rejectsGrpc(
          renewCall(pub, newKey().csr),
          grpc.status.UNAUTHENTICATED,
          CUSTOM,
          DEFAULT_AGENT_CONTEXT_OID,
        );
        assert.equal(e.metadata.get(ERROR_CODE_METADATA_KEY)[0], ErrorCode.AGENT_CONTEXT_OID_MISMATCH);
      } finally {
        pub.close();
      }
    }
    // A session call with the old session SVID is refused the same way.
    await assert.rejects(startSession(s, plannerSession), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.UNAUTHENTICATED);
      assert.equal(e.metadata.get(ERROR_CODE_METADATA_KEY)[0], ErrorCode.AGENT_CONTEXT_OID_MISMATCH);
      return true;
    });
    // Attesting afresh gives an SVID under the new OID.
    const fresh = await register(s, 'fresh');
    assert.ok(leafOf(fresh).extension(DEFAULT_AGENT_CONTEXT_OID) !== undefined);
  });
});
