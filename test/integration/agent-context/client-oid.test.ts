/**
 * The client side of agent_context.oid against a real server on a non-default OID (127.0.0.1:0, SQLite in a
 * temp dir): attestToServer, `lanyard svid fetch` and the node agent's own identity take the server's OID and
 * get SVIDs; left on the default OID, each refuses the SVID with AgentContextOidMismatchError naming both OIDs,
 * and writes nothing.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NodeIdentity } from '../../../src/agent/node-identity';
import { attestToServer } from '../../../src/client/attest';
import { ServerEndpoints } from '../../../src/client/server-endpoints';
import { AgentContextOidMismatchError, ErrorCode } from '../../../src/errors';
import { verifyX509Svid } from '../../../src/verify';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../../src/x509/agent-context/oid';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { decodePemBlocks } from '../../../src/x509/pem';
import { AGENT_ID } from '../../support/agent';
import { rejectsWithCodeAs } from '../../support/refusal';
import { cliOk, runCli } from '../../support/server-process';
import { startTestServer, type TestServer } from '../../support/test-server';
import { tempDir } from '../../support/tmp';

const CUSTOM = '1.3.6.1.4.1.99999.7.1';
const TD = 'lanyard.local';
const WORKLOAD = `spiffe://${TD}/agents/oid-client`;
const BOTH_OIDS = new RegExp(
  `${CUSTOM.replace(/\./g, '\\.')}.*${DEFAULT_AGENT_CONTEXT_OID.replace(/\./g, '\\.')}`,
);

describe('client agent_context.oid: attest, svid fetch and the node identity', function () {
  this.timeout(120_000);
  let s: TestServer;
  let work: string;

  const token = async (spiffeId: string): Promise<string> =>
    (await s.client.createJoinToken({ spiffeId })).token;
  const attest = async (agentContextOid?: string): ReturnType<typeof attestToServer> =>
    attestToServer({
      server: s.running.publicAddress,
      bundle: s.running.ca.bundle(),
      attestorType: 'join_token',
      evidence: Buffer.from(await token(WORKLOAD)),
      ...(agentContextOid !== undefined && { agentContextOid }),
    });
  const nodeIdentity = (dataDir: string, agentContextOid?: string, now = (): Date => new Date()) =>
    token(AGENT_ID).then(
      (t) =>
        new NodeIdentity({
          servers: new ServerEndpoints(s.running.publicAddress),
          bundle: () => s.running.ca.bundle(),
          attestation: { attestorType: 'join_token', evidence: Buffer.from(t) },
          dataDir,
          clock: now,
          ...(agentContextOid !== undefined && { agentContextOid }),
        }),
    );

  before(async () => {
    s = await startTestServer({ config: { agentContextOid: CUSTOM } });
    work = tempDir('client-oid');
    fs.writeFileSync(path.join(work, 'bundle.pem'), s.running.ca.bundle().toPem());
    await s.client.createEntry({
      entry: { spiffeId: WORKLOAD, selectors: [{ type: 'unix', value: 'uid:1' }] },
    });
    await s.client.createEntry({
      entry: { spiffeId: AGENT_ID, selectors: [{ type: 'node', value: 'name:n1' }] },
    });
  });
  after(async () => s?.stop());

  it('attestToServer with the server OID returns the SVID, its context read under that OID', async () => {
    const got = await attest(CUSTOM);
    assert.equal(got.svid.id.toString(), WORKLOAD);
    assert.ok(got.svid.context !== undefined);
    assert.ok(got.svid.chain[0]!.extension(CUSTOM) !== undefined);
    const v = verifyX509Svid(got.svid.chain, got.bundle, { agentContextOid: CUSTOM, cache: null });
    assert.deepEqual(v.context, got.svid.context);
  });

  it('attestToServer left on the default OID refuses the SVID, naming both OIDs', async () => {
    const e = await rejectsWithCodeAs(
      attest(),
      AgentContextOidMismatchError,
      ErrorCode.AGENT_CONTEXT_OID_MISMATCH,
      BOTH_OIDS,
    );
    assert.equal(e.expectedOid, DEFAULT_AGENT_CONTEXT_OID);
    assert.equal(e.foundOid, CUSTOM);
  });

  it('`lanyard svid fetch` with --agent-context-oid or LANYARD_AGENT_CONTEXT_OID writes the SVID files', async () => {
    fs.writeFileSync(path.join(work, 'token1'), await token(WORKLOAD), { mode: 0o600 });
    fs.writeFileSync(path.join(work, 'token2'), await token(WORKLOAD), { mode: 0o600 });
    const fetch = (tokenFile: string, out: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}) =>
      runCli(
        [
          'svid',
          'fetch',
          '--server',
          s.running.publicAddress,
          '--bundle',
          'bundle.pem',
          '--join-token-file',
          tokenFile,
          '--out',
          out,
          ...extra,
        ],
        { LANYARD_AGENT_CONTEXT_OID: '', ...env },
        work,
      );
    cliOk(await fetch('token1', 'flag', ['--agent-context-oid', CUSTOM]));
    cliOk(await fetch('token2', 'env', [], { LANYARD_AGENT_CONTEXT_OID: CUSTOM }));
    for (const out of ['flag', 'env']) {
      const chain = decodePemBlocks(fs.readFileSync(path.join(work, out, 'svid.pem'), 'utf8'), 'CERTIFICATE');
      assert.ok(ParsedCertificate.fromDer(chain[0]!).extension(CUSTOM) !== undefined);
      assert.equal(fs.statSync(path.join(work, out, 'svid_key.pem')).mode & 0o777, 0o600);
      const ok = cliOk(
        await runCli(
          [
            'svid',
            'verify',
            '--chain',
            `${out}/svid.pem`,
            '--bundle',
            `${out}/bundle.pem`,
            '--agent-context-oid',
            CUSTOM,
          ],
          {},
          work,
        ),
      );
      assert.match(ok.stdout, /^OK: spiffe:\/\/lanyard\.local\/agents\/oid-client/);
    }
  });

  it('`lanyard svid fetch` on the default OID refuses the SVID (exit 1) and writes nothing', async () => {
    fs.writeFileSync(path.join(work, 'token3'), await token(WORKLOAD), { mode: 0o600 });
    const r = await runCli(
      [
        'svid',
        'fetch',
        '--server',
        s.running.publicAddress,
        '--bundle',
        'bundle.pem',
        '--join-token-file',
        'token3',
        '--out',
        'refused',
      ],
      { LANYARD_AGENT_CONTEXT_OID: '' },
      work,
    );
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /ERR_AGENT_CONTEXT_OID_MISMATCH/);
    assert.match(r.stderr, BOTH_OIDS);
    assert.equal(fs.existsSync(path.join(work, 'refused')), false);
  });

  it("the node agent's identity on the server OID attests, is kept on disk, reloads and renews", async () => {
    const dataDir = path.join(tempDir('node-oid'), 'data');
    let offsetMs = 0;
    const clock = (): Date => new Date(Date.now() + offsetMs);
    const first = await nodeIdentity(dataDir, CUSTOM, clock);
    const attested = await first.ensure();
    assert.equal(attested.id.toString(), AGENT_ID);
    assert.ok(attested.context !== undefined);
    assert.ok(fs.existsSync(path.join(dataDir, 'agent_svid.pem')));

    // A restart reads the saved SVID back under the same OID: no new attestation.
    const restarted = await nodeIdentity(dataDir, CUSTOM, clock);
    assert.ok(restarted.current() !== undefined);
    assert.equal(restarted.current()!.chain[0]!.sha256Hex, attested.chain[0]!.sha256Hex);

    // Past half its lifetime it renews, and the renewed SVID is read under the same OID.
    offsetMs = (attested.notAfter.getTime() - Date.now()) * 0.75;
    const renewed = await restarted.ensure();
    assert.notEqual(renewed.chain[0]!.serialHex, attested.chain[0]!.serialHex);
    assert.ok(renewed.chain[0]!.extension(CUSTOM) !== undefined);
    assert.ok(renewed.context !== undefined);

    // Started on another OID, the saved SVID is not taken up (the server would refuse it too).
    const reconfigured = await nodeIdentity(dataDir, DEFAULT_AGENT_CONTEXT_OID, clock);
    assert.equal(reconfigured.current(), undefined);
  });

  it("the node agent's identity on the default OID refuses the server's SVID and saves nothing", async () => {
    const dataDir = path.join(tempDir('node-oid'), 'data');
    const identity = await nodeIdentity(dataDir);
    await rejectsWithCodeAs(
      identity.ensure(),
      AgentContextOidMismatchError,
      ErrorCode.AGENT_CONTEXT_OID_MISMATCH,
      BOTH_OIDS,
    );
    assert.equal(identity.current(), undefined);
    assert.equal(fs.existsSync(path.join(dataDir, 'agent_svid.pem')), false);
    assert.equal(fs.existsSync(path.join(dataDir, 'agent_svid_key.pem')), false);
  });
});
