/**
 * What a refusal may say about the peer's agent context. A revoked peer passed every check but freshness, so its
 * deny decision carries the context the CA signed (and the trail can place the refusal under its session); a
 * peer that failed path validation, the trust-domain check or the context rules gets none, even when it is also
 * on the revocation list. Real CAs, real signatures, the production verifier and a real file chain traced with
 * `lanyard audit trace` as a person runs it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileAuditLog } from '../../../src/audit/file-log';
import { auditHopDecisions, hopDecisionEvent } from '../../../src/hop/audit';
import { BundleSet, X509Bundle } from '../../../src/bundle';
import { EXIT_OK } from '../../../src/cli/exit-codes';
import type { HopDecision } from '../../../src/hop/decision';
import { verifyHopPeer, verifyHopPeerSync, type HopVerifyOptions } from '../../../src/hop/peer';
import { authorizeAny } from '../../../src/verify/authorize';
import { TrustDomain } from '../../../src/spiffe';
import { StaticRevocationList } from '../../../src/verify/revocation';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import {
  baseContext,
  createCa,
  delegate,
  type Hop,
  type Issued,
  issueSvid,
  plannerChain,
  seconds,
  TD,
} from '../../support/pki';
import { runCli, type CliResult } from '../../support/server-process';

const SERVICE = `spiffe://${TD}/services/docs`;

const lanyard = (args: string[]): Promise<CliResult> => runCli(args);

describe('hop refusals: which context a deny decision carries', function () {
  this.timeout(60_000);
  let ca: Issued;
  let chain: Hop[];
  let bundle: X509Bundle;
  let revocation: StaticRevocationList;
  const decisions: HopDecision[] = [];
  const options = (extra: Partial<HopVerifyOptions> = {}): HopVerifyOptions => ({
    bundles: bundle,
    authorize: authorizeAny(),
    service: SERVICE,
    revocation,
    cache: null,
    onDecision: (d) => decisions.push(d),
    ...extra,
  });
  const last = (): HopDecision => {
    const d = decisions[decisions.length - 1];
    assert.ok(d, 'a decision was reported');
    return d;
  };

  before(() => {
    ca = createCa();
    chain = plannerChain(ca);
    bundle = new X509Bundle(TrustDomain.parse(TD), { x509Authorities: [ca.cert] });
    // The planner's task ended: its session, and with it every session delegated from it, is revoked.
    revocation = new StaticRevocationList().revokeSession('session-planner', 'task done');
  });

  it('a revoked peer is refused with ERR_REVOKED and its deny decision carries the verified context', async () => {
    const retrieval = chain[2]!;
    await assert.rejects(
      verifyHopPeer([retrieval.cert.der], options(), { transport: 'http', action: 'GET /docs' }),
      { code: 'ERR_REVOKED' },
    );
    const d = last();
    assert.equal(d.decision, 'deny');
    assert.equal(d.reason, 'ERR_REVOKED');
    assert.equal(d.peerId, retrieval.id);
    assert.equal(d.peerSerial, retrieval.cert.serialHex);
    assert.equal(d.context?.sessionId, 'session-retrieval');
    assert.equal(d.context?.rootSessionId, 'session-planner');
    assert.equal(d.context?.principal.id, 'alice');
    assert.deepEqual(
      d.context?.delegation.map((l) => l.sessionId),
      ['session-planner', 'session-tool-runner'],
    );
    // In the trail it is a verified actor placed under its session, not an unverified claim.
    const e = hopDecisionEvent(d);
    assert.equal(e.actor, retrieval.id);
    assert.equal(e.sessionId, 'session-retrieval');
    assert.equal(e.parentSessionId, 'session-tool-runner');

    // The synchronous path (a TLS client's server check) says the same.
    assert.throws(() => verifyHopPeerSync([retrieval.cert.der], options(), { transport: 'tls' }), {
      code: 'ERR_REVOKED',
    });
    assert.equal(last().context?.sessionId, 'session-retrieval');
  });

  it('the same peer without a revocation is allowed; a policy refusal also keeps the context', async () => {
    const peer = await verifyHopPeer([chain[2]!.cert.der], options({ revocation: undefined }), {
      transport: 'http',
    });
    assert.equal(peer.context?.sessionId, 'session-retrieval');
    await assert.rejects(
      verifyHopPeer(
        [chain[2]!.cert.der],
        options({
          revocation: undefined,
          authorize: async () =>
            Promise.resolve({ allow: false, reason: 'no-docs-for-retrieval', policyVersion: 'v1' }),
        }),
        { transport: 'http' },
      ),
    );
    assert.equal(last().reason, 'no-docs-for-retrieval');
    assert.equal(last().context?.sessionId, 'session-retrieval');
  });

  it('a revoked session signed by a CA the bundle does not hold: no context (path validation failed first)', async () => {
    const rogue = plannerChain(createCa());
    await assert.rejects(
      verifyHopPeer([rogue[2]!.cert.der], options(), { transport: 'http' }),
      (e: { code: string }) => e.code !== 'ERR_REVOKED',
    );
    assert.equal(last().decision, 'deny');
    assert.equal(last().peerId, rogue[2]!.id);
    assert.equal(last().context, undefined);
    assert.equal(hopDecisionEvent(last()).actor, `unverified:${rogue[2]!.id}`);
    assert.equal(hopDecisionEvent(last()).sessionId, undefined);
  });

  it('a revoked peer of a foreign trust domain: no context (ERR_WRONG_TRUST_DOMAIN)', async () => {
    const other = createCa('other.example');
    const key = generateSigningKeyPair('ec-p256');
    const id = 'spiffe://other.example/agents/retrieval';
    const ctx = baseContext({ sessionId: 'session-planner', scopes: ['docs:read'] });
    const cert = issueSvid(other, id, { key, context: ctx, ttlSeconds: 600 }).cert;
    const both = new BundleSet([
      bundle,
      new X509Bundle(TrustDomain.parse('other.example'), { x509Authorities: [other.cert] }),
    ]);
    await assert.rejects(
      verifyHopPeer([cert.der], options({ bundles: both, trustDomain: TD }), { transport: 'grpc' }),
      { code: 'ERR_WRONG_TRUST_DOMAIN' },
    );
    assert.equal(last().context, undefined);
    assert.equal(last().peerId, id);
  });

  it('a revoked peer whose context breaks the context rules (scope escalation): no context', async () => {
    const planner = chain[0]!;
    const key = generateSigningKeyPair('ec-p256');
    const id = `spiffe://${TD}/escalator`;
    const notAfter = new Date(seconds(Date.now()).getTime() + 600_000);
    const link = delegate(planner, id, key.publicKey, ['docs:read'], notAfter);
    const ctx = baseContext({
      agentId: 'escalator',
      sessionId: 'session-escalator',
      rootSessionId: 'session-planner',
      scopes: ['docs:read', 'docs:write'],
      delegation: [link],
    });
    const cert = issueSvid(ca, id, { key, context: ctx, ttlSeconds: 600 }).cert;
    await assert.rejects(
      verifyHopPeer([cert.der], options(), { transport: 'http' }),
      (e: { code: string }) => e.code !== 'ERR_REVOKED' && e.code.startsWith('ERR_'),
    );
    assert.equal(last().context, undefined);
    assert.equal(hopDecisionEvent(last()).actor, `unverified:${id}`);
  });

  it('lanyard audit trace --session shows the refused hop with the revoked session', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-hop-refusal-'));
    try {
      const file = path.join(dir, 'docs.jsonl');
      const log = await FileAuditLog.open({ file, chain: SERVICE });
      const record = auditHopDecisions(log);
      const o = options({ onDecision: record });
      const toolRunner = chain[1]!;
      await verifyHopPeer([toolRunner.cert.der], options({ revocation: undefined, onDecision: record }), {
        transport: 'http',
        action: 'GET /docs/1',
      });
      await assert.rejects(
        verifyHopPeer([toolRunner.cert.der], o, { transport: 'http', action: 'GET /docs/2' }),
        { code: 'ERR_REVOKED' },
      );
      await record.settled();
      await log.close();
      const r = await lanyard(['audit', 'trace', '--session', 'session-tool-runner', '--file', file]);
      assert.equal(r.code, EXIT_OK, r.stderr);
      // Only the service's own chain is traced, so no server record says what the session is: both hops are
      // the service's report, each naming the session the refused SVID's context carries.
      assert.match(
        r.stdout,
        /hop\.decision {2}allow .*GET \/docs\/1 .*reported by spiffe:\/\/example\.org\/services\/docs #1 {2}session session-tool-runner/,
      );
      assert.match(
        r.stdout,
        /hop\.decision {2}DENY ERR_REVOKED {2}at spiffe:\/\/example\.org\/services\/docs.*GET \/docs\/2 .*reported by spiffe:\/\/example\.org\/services\/docs #2 {2}session session-tool-runner/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
