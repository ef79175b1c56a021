/**
 * The audit trail of a real multi-hop scenario: a real server (127.0.0.1:0, temp data dir, SQLite), alice's
 * session on the planner (asserted principal), a grant to the tool-runner and its redemption, refusals (a
 * stranger redeeming, a grant asking for more scope), hop decisions of a tool service verifying the
 * delegated SVID (recorded in its own file chain and shipped to the server), the admin ending alice's
 * session (cascade). Then: the server's chain and the shipped one verify, the trace shows principal ->
 * sessions -> delegation -> hops, queries by serial find the hops, no secret reached the trail, the audit key
 * is in the SPIFFE bundle, non-admins cannot read the trail, and a restart continues the same chain.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditPublicKey } from '../../../src/audit/audit-key';
import { FileAuditLog } from '../../../src/audit/file-log';
import { auditHopDecisions } from '../../../src/hop/audit';
import { parseChainText } from '../../../src/audit/jsonl';
import type { AuditRecord } from '../../../src/audit/record';
import { buildTrace, renderTraceText } from '../../../src/audit/trace';
import { verifyAuditChain } from '../../../src/audit/verify-chain';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { signGrant } from '../../../src/client/delegation';
import { AuditServiceClient } from '../../../src/gen/lanyard/v1/audit';
import { StartSessionRequest } from '../../../src/gen/lanyard/v1/session';
import { AuditAdminClient } from '../../../src/server/audit/client';
import { TrustDomain } from '../../../src/spiffe';
import { verifyX509Svid } from '../../../src/verify';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { createCsr } from '../../../src/x509/csr';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { type Agent, id, register, sessionClient, TD, unary } from '../../support/sessions';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { publicCredentials, PUBLIC_CHANNEL_OPTIONS } from '../../support/public-client';
import { rejectsWithWireCode } from '../../support/grpc-refusal';

const SERVER_CHAIN = `spiffe://${TD}/lanyard/server`;
const TOOL_SERVICE = id('tool-service');

function records(lines: string[]): AuditRecord[] {
  return parseChainText(lines.join('\n') + '\n').records;
}

describe('audit trail of a multi-hop scenario on a real server', function () {
  this.timeout(90_000);
  const dir = tempDataDir();
  const files = tempDataDir();
  let s: TestServer;
  let audit: AuditAdminClient;
  let planner: Agent;
  let tool: Agent;
  let stranger: Agent;
  let plannerSession: Agent;
  let toolSession: Agent;
  let rootSessionId: string;
  let toolSessionId: string;
  let toolSerial: string;
  const tokens: string[] = [];
  let hopLog: FileAuditLog;

  before(async () => {
    s = await startTestServer({ dir });
    audit = new AuditAdminClient(s.config.adminSocketPath);
    // Join tokens are secrets: remember each one to prove none reached the trail.
    const create = s.client.createJoinToken.bind(s.client);
    s.client.createJoinToken = async (req) => {
      const r = await create(req);
      tokens.push(r.token);
      return r;
    };
    hopLog = await FileAuditLog.open({ file: path.join(files, 'tool-service.jsonl'), chain: TOOL_SERVICE });
  });
  after(async () => {
    audit.close();
    await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  const bundle = (): X509Bundle => X509Bundle.fromPem(TrustDomain.parse(TD), s.running.ca.bundle().toPem());

  it('alice -> planner -> tool-runner, refusals, hop decisions, the end of the session', async () => {
    planner = await register(s, 'planner', {
      allowedScopes: ['docs:read', 'docs:write'],
      maxDelegationDepth: 1,
      allowedDelegates: [id('tool-runner')],
      canAssertPrincipal: true,
    });
    tool = await register(s, 'tool-runner', { allowedScopes: ['docs:read'] });
    stranger = await register(s, 'stranger', { allowedScopes: ['docs:read'] });

    const c = sessionClient(s, planner);
    const key = generateSigningKeyPair('ec-p256').privateKey;
    const started = await unary(
      c.startSession.bind(c),
      StartSessionRequest.fromPartial({
        csr: Buffer.from(createCsr(key).der),
        principal: { evidence: { $case: 'assertedId', value: 'alice' } },
        intent: 'summarise tickets',
        scopes: ['docs:read', 'docs:write'],
      }),
    );
    c.close();
    rootSessionId = started.sessionId;
    plannerSession = { ...planner, key, chain: started.svid!.certChain.map((b) => new Uint8Array(b)) };

    // A grant for more scope than the session holds is refused (and recorded as refused).
    const pc = sessionClient(s, plannerSession);
    const wide = signGrant({
      parentCert: plannerSession.chain[0]!,
      parentKey: plannerSession.key,
      childId: id('tool-runner'),
      childKey: generateSigningKeyPair('ec-p256').publicKey,
      scopes: ['docs:read', 'admin:all'],
    });
    await rejectsWithWireCode(
      unary(pc.createGrant.bind(pc), {
        binding: Buffer.from(wide.bindingDer),
        signature: Buffer.from(wide.signature),
      }),
      'ERR_SCOPE_ESCALATION',
    );
    // The tool-runner generates its key first: the grant names it.
    const toolKeys = generateSigningKeyPair('ec-p256');
    const toolKey = toolKeys.privateKey;
    const g = signGrant({
      parentCert: plannerSession.chain[0]!,
      parentKey: plannerSession.key,
      childId: id('tool-runner'),
      childKey: toolKeys.publicKey,
      scopes: ['docs:read'],
    });
    const grant = await unary(pc.createGrant.bind(pc), {
      binding: Buffer.from(g.bindingDer),
      signature: Buffer.from(g.signature),
    });
    pc.close();

    // The stranger cannot redeem it; the tool-runner can.
    const sc = sessionClient(s, stranger);
    await rejectsWithWireCode(
      unary(sc.redeemGrant.bind(sc), {
        grantId: grant.grantId,
        foreignGrant: undefined,
        csr: Buffer.from(createCsr(generateSigningKeyPair('ec-p256').privateKey).der),
      }),
      'ERR_GRANT_WRONG_REDEEMER',
    );
    sc.close();
    const tc = sessionClient(s, tool);
    const redeemed = await unary(tc.redeemGrant.bind(tc), {
      grantId: grant.grantId,
      foreignGrant: undefined,
      csr: Buffer.from(createCsr(toolKey).der),
    });
    tc.close();
    toolSessionId = redeemed.sessionId;
    toolSession = { ...tool, key: toolKey, chain: redeemed.svid!.certChain.map((b) => new Uint8Array(b)) };
    toolSerial = ParsedCertificate.fromDer(toolSession.chain[0]!).serialHex;

    // A tool service verifies the delegated SVID at its hop (the same verifier the hop helpers run) and
    // reports each decision to its own file chain: one allowed call, one refused for a missing scope.
    const onDecision = auditHopDecisions(hopLog);
    const v = verifyX509Svid(toolSession.chain, bundle());
    const base = {
      transport: 'grpc' as const,
      service: TOOL_SERVICE,
      peerId: v.id.toString(),
      peerSerial: toolSerial,
      context: v.context!,
    };
    onDecision({ ...base, at: new Date(), action: '/docs.v1.Docs/Read', decision: 'allow' });
    onDecision({
      ...base,
      at: new Date(),
      action: '/docs.v1.Docs/Write',
      decision: 'deny',
      reason: 'ERR_UNAUTHORIZED',
    });
    await onDecision.settled();

    // The admin ends alice's session: the tool-runner's delegated session ends with it.
    const ended = await s.client.endSession({ sessionId: rootSessionId, reason: 'incident 42' });
    assert.deepEqual([...ended.endedSessionIds].sort(), [rootSessionId, toolSessionId].sort());
  });

  it('ships the tool service chain; the server verifies and stores it, and refuses a tampered one', async () => {
    await hopLog.checkpoint();
    const text = (await hopLog.exportLines()).join('\n') + '\n';
    const res = await audit.ingest(text);
    assert.equal(res.chain, TOOL_SERVICE);
    assert.equal(res.added, 2);
    // Shipping again adds nothing; a tampered copy is refused and changes nothing.
    assert.equal((await audit.ingest(text)).added, 0);
    const tampered = text.replace('"decision":"deny"', '"decision":"allow"');
    await assert.rejects(
      audit.ingest(tampered),
      (e: { lanyardCode?: string }) => e.lanyardCode === 'ERR_AUDIT_CHAIN_BROKEN',
    );
    assert.equal((await audit.head(TOOL_SERVICE)).headSeq, 2);
  });

  it("the server's chain verifies with the key from the SPIFFE bundle and records every step", async () => {
    await s.running.audit.checkpoint();
    const bundleRes = await s.client.getBundle();
    const key = AuditPublicKey.fromSpiffeBundle(JSON.parse(bundleRes.bundle!.spiffeBundleJson) as unknown);
    assert.ok(key !== undefined, 'the bundle publishes the audit key');
    assert.equal(key.keyId, s.running.audit.key.publicKey.keyId);
    // The bundle stays a valid SPIFFE bundle for standard consumers.
    assert.ok(
      X509Bundle.fromPem(TrustDomain.parse(TD), bundleRes.bundle!.x509AuthoritiesPem).x509Authorities.length >
        0,
    );

    const lines = await audit.export();
    const parsed = parseChainText(lines.join('\n') + '\n');
    const v = verifyAuditChain(SERVER_CHAIN, parsed.records, parsed.checkpoints, key);
    assert.equal(v.ok, true, v.break?.message);
    assert.ok(v.checkpointedSeq === v.headSeq && v.headSeq > 0);

    const evs = parsed.records.map(
      (r) => `${r.event}:${r.decision}${r.decision === 'deny' ? `:${r.reason}` : ''}`,
    );
    for (const e of [
      'entry.create:allow',
      'join_token.create:allow',
      'svid.attest:allow',
      'session.start:allow',
      'grant.create:deny:ERR_SCOPE_ESCALATION',
      'grant.create:allow',
      'grant.redeem:deny:ERR_GRANT_WRONG_REDEEMER',
      'grant.redeem:allow',
      'session.end:allow',
      'audit.ingest:allow',
    ]) {
      assert.ok(evs.includes(e), `${e} missing from ${evs.join(', ')}`);
    }
    // An Attest record names the token it spent (by id, as the token's creation record does) and the SVID.
    const created = new Set(
      parsed.records.filter((r) => r.event === 'join_token.create').map((r) => r.reason),
    );
    const attested = parsed.records.filter((r) => r.event === 'svid.attest' && r.decision === 'allow');
    assert.ok(attested.length > 0);
    for (const r of attested) {
      assert.match(r.reason ?? '', /^token \S+$/);
      assert.ok(created.has(r.reason), `${r.reason ?? ''} names no token created`);
      assert.match(r.serial ?? '', /^[0-9a-f]+$/);
    }
    const start = parsed.records.find((r) => r.event === 'session.start')!;
    assert.equal(start.principal, 'alice');
    assert.equal(start.sessionId, rootSessionId);
    assert.equal(start.actor, id('planner'));
    assert.deepEqual(start.scopes, ['docs:read', 'docs:write']);
    assert.equal(start.policyVersion, 'none');
    const redeem = parsed.records.find((r) => r.event === 'grant.redeem' && r.decision === 'allow')!;
    assert.equal(redeem.serial, toolSerial);
    assert.equal(redeem.parentSessionId, rootSessionId);
    assert.equal(redeem.parentCertSha256, ParsedCertificate.fromDer(plannerSession.chain[0]!).sha256Hex);
    const refused = parsed.records.find((r) => r.event === 'grant.redeem' && r.decision === 'deny')!;
    assert.equal(refused.actor, id('stranger'));
    const ends = parsed.records.filter((r) => r.event === 'session.end');
    assert.deepEqual(ends.map((r) => r.subject).sort(), [rootSessionId, toolSessionId].sort());
    assert.ok(ends.every((r) => r.actor === 'admin-socket' && r.rootSessionId === rootSessionId));

    // Data minimisation: no join token, key or certificate body anywhere in the trail.
    const all = lines.join('\n');
    assert.ok(tokens.length >= 3);
    for (const t of tokens) assert.ok(!all.includes(t), 'a join token reached the audit trail');
    assert.ok(
      !all.includes('PRIVATE KEY') && !all.includes('MII'),
      'key or certificate material in the trail',
    );
  });

  it('trace by principal: alice -> planner session -> tool-runner session -> the hops that accepted and refused it', async () => {
    const byPrincipal = records(await audit.query('principal', 'alice'));
    const roots = new Set(byPrincipal.map((r) => r.rootSessionId));
    assert.deepEqual([...roots], [rootSessionId]);
    const tree = records(await audit.query('rootSessionId', rootSessionId));
    const trace = buildTrace([...byPrincipal, ...tree]);
    assert.equal(trace.principals.length, 1);
    const alice = trace.principals[0]!;
    assert.equal(alice.principal, 'alice');
    assert.equal(alice.sessions.length, 1);
    const root = alice.sessions[0]!;
    assert.equal(root.sessionId, rootSessionId);
    assert.equal(root.spiffeId, id('planner'));
    assert.ok(root.endedAt !== undefined);
    assert.equal(root.children.length, 1);
    const child = root.children[0]!;
    assert.equal(child.sessionId, toolSessionId);
    assert.equal(child.spiffeId, id('tool-runner'));
    assert.deepEqual(child.scopes, ['docs:read']);
    const hops = child.events.filter((e) => e.event === 'hop.decision');
    assert.deepEqual(
      hops.map((h) => [h.decision, h.action, h.chain]),
      [
        ['allow', 'grpc /docs.v1.Docs/Read', TOOL_SERVICE],
        ['deny', 'grpc /docs.v1.Docs/Write', TOOL_SERVICE],
      ],
    );
    const text = renderTraceText(trace);
    assert.match(text, /principal alice/);
    assert.match(text, new RegExp(`session ${toolSessionId}`));
    assert.match(text, /hop\.decision {2}DENY ERR_UNAUTHORIZED/);

    // By serial: the delegated SVID's issuance and both hops, across the server's and the shipped chain.
    const bySerial = records(await audit.query('serial', toolSerial.toUpperCase()));
    assert.deepEqual(
      bySerial.map((r) => [r.chain, r.event]),
      [
        [SERVER_CHAIN, 'grant.redeem'],
        [TOOL_SERVICE, 'hop.decision'],
        [TOOL_SERVICE, 'hop.decision'],
      ],
    );
    const bySession = records(await audit.query('sessionId', toolSessionId));
    assert.ok(bySession.some((r) => r.event === 'session.end'));
    const agentId = verifyX509Svid(toolSession.chain, bundle(), { cache: null }).context!.agentId;
    assert.ok(records(await audit.query('agentId', agentId)).some((r) => r.event === 'grant.redeem'));
  });

  it('the AuditService on the public listener is for admin SVIDs only', async () => {
    const c = new AuditServiceClient(
      s.running.publicAddress,
      publicCredentials(s.running.ca.bundle().toPem(), TD, planner),
      PUBLIC_CHANNEL_OPTIONS,
    );
    try {
      await rejectsWithWireCode(
        unary(c.queryAuditRecords.bind(c), {
          key: { $case: 'principal', value: 'alice' },
          chain: '',
          pageSize: 0,
          pageToken: '',
        }),
        'ERR_UNAUTHORIZED',
      );
    } finally {
      c.close();
    }
  });

  it('a restart signs a final checkpoint, then continues the same chain, which still verifies', async () => {
    const before = await audit.head();
    audit.close();
    await s.stop();
    s = await startTestServer({ dir });
    audit = new AuditAdminClient(s.config.adminSocketPath);
    const head = await audit.head();
    assert.equal(head.headSeq, before.headSeq);
    const cp = JSON.parse(head.checkpointJson) as { seq: number };
    assert.equal(cp.seq, before.headSeq, 'the shutdown checkpoint signs the last record');
    await s.client.createEntry({
      entry: { spiffeId: id('after-restart'), selectors: [{ type: 'unix', value: 'uid:7' }] },
    });
    const parsed = parseChainText((await audit.export()).join('\n') + '\n');
    const v = verifyAuditChain(
      SERVER_CHAIN,
      parsed.records,
      parsed.checkpoints,
      AuditPublicKey.fromJwk(JSON.parse(head.publicKeyJwk)),
    );
    assert.equal(v.ok, true, v.break?.message);
    assert.equal(v.headSeq, before.headSeq + 1);
    const keyFile = path.join(dir, 'audit', 'audit-key.pem');
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    assert.ok(
      !s.logs.join('').includes(fs.readFileSync(keyFile, 'utf8').split('\n')[1]!),
      'the audit key is never logged',
    );
  });
});
