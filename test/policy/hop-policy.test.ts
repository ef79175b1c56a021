/**
 * The engine as the hop helpers' policy hook: verifyHopPeer (the one path every TLS/gRPC/HTTP helper runs)
 * with real verified SVIDs, a real Cedar engine and the adapter. The decision and the policy version land
 * in the HopDecision the helper reports, for an allow and for a refusal.
 */
import assert from 'node:assert/strict';
import { BundleSet } from '../../src/bundle';
import { ErrorCode, LanyardError } from '../../src/errors';
import type { HopDecision } from '../../src/hop/decision';
import { verifyHopPeer } from '../../src/hop/peer';
import type { HopPolicy } from '../../src/hop/policy';
import { cedarHopPolicy, PolicyEngine, type CedarDecision } from '../../src/policy';
import { createPki, delegatedPair, type DelegatedPair } from '../support/pki';
import { tempPolicyDir } from './helpers';
import { removeDir } from '../support/tmp';

const POLICY = `
@id("runner-calls-a-for-alice")
permit (principal, action == Lanyard::Action::"call", resource == Lanyard::Service::"service-a")
when {
  principal.rootPrincipal == "alice" &&
  principal.delegatedBy.contains("spiffe://example.org/agent/planner") &&
  context.transport == "grpc" && context.operation == "/demo.ToolService/Run"
};

@id("no-bare-tls")
forbid (principal, action == Lanyard::Action::"call", resource) when { context.operation == "" };
`;

describe('policy: the Cedar engine behind the hop helpers (HopPolicy)', () => {
  // Built when the tests run, not when mocha loads the file: a delegated pair made at load can expire or
  // outlive its links by the time a slow run reaches these tests.
  let bundles: BundleSet;
  let pair: DelegatedPair;
  const der = (chain: DelegatedPair['child']['chain']): Uint8Array[] => chain.map((c) => c.der);
  let dir: string;
  let engine: PolicyEngine;
  const decisions: HopDecision[] = [];
  const evaluated: CedarDecision[] = [];
  let hook: HopPolicy;

  before(() => {
    const pki = createPki('example.org');
    bundles = new BundleSet([pki.bundle]);
    pair = delegatedPair(
      pki,
      { name: 'planner', scopes: ['tools:run'], ttlSeconds: 3 * 3600 },
      { name: 'tool-runner', scopes: ['tools:run'], ttlSeconds: 2 * 3600 },
    );
    dir = tempPolicyDir({ 'hop.cedar': POLICY });
    engine = PolicyEngine.load({ sources: [dir], watch: false });
    // Typed as the hop helpers' hook: the adapter fits it without a cast.
    hook = cedarHopPolicy(engine, { onDecision: (d) => evaluated.push(d) });
  });
  after(() => {
    engine.close();
    removeDir(dir);
  });
  beforeEach(() => {
    decisions.length = 0;
    evaluated.length = 0;
  });

  const options = () => ({
    bundles,
    authorize: hook,
    service: 'service-a',
    cache: null,
    onDecision: (d: HopDecision) => decisions.push(d),
  });

  it('allows the delegated tool-runner: the peer and the HopDecision carry the policy version', async () => {
    const peer = await verifyHopPeer(der(pair.child.chain), options(), {
      transport: 'grpc',
      action: '/demo.ToolService/Run',
    });
    assert.equal(peer.policyVersion, engine.version);
    assert.equal(decisions.length, 1);
    const d = decisions[0]!;
    assert.equal(d.decision, 'allow');
    assert.equal(d.policyVersion, engine.version);
    assert.equal(d.service, 'service-a');
    assert.equal(d.peerId, 'spiffe://example.org/agent/tool-runner');
    assert.deepEqual(evaluated[0]!.reasons, ['runner-calls-a-for-alice']);
  });

  it('refuses the planner itself (no permit) with ERR_POLICY_DENIED; the decision names why and the version', async () => {
    await assert.rejects(
      verifyHopPeer(der(pair.parent.chain), options(), {
        transport: 'grpc',
        action: '/demo.ToolService/Run',
      }),
      (e: unknown) =>
        e instanceof LanyardError &&
        e.code === ErrorCode.POLICY_DENIED &&
        /no policy permits it/.test(e.message),
    );
    const d = decisions[0]!;
    assert.equal(d.decision, 'deny');
    assert.equal(d.reason, 'no policy permits it');
    assert.equal(d.policyVersion, engine.version);
    assert.equal(d.peerId, 'spiffe://example.org/agent/planner');
  });

  it('a bare TLS connection (no action) meets the forbid, which is named', async () => {
    await assert.rejects(
      verifyHopPeer(der(pair.child.chain), options(), { transport: 'tls' }),
      /forbidden by no-bare-tls/,
    );
    assert.equal(decisions[0]!.reason, 'forbidden by no-bare-tls');
    assert.equal(decisions[0]!.policyVersion, engine.version);
  });

  it('a peer the verifier refuses never reaches the policy', async () => {
    const foreign = createPki('example.org');
    const impostor = delegatedPair(
      foreign,
      { name: 'planner', scopes: ['tools:run'], ttlSeconds: 3 * 3600 },
      { name: 'tool-runner', scopes: ['tools:run'], ttlSeconds: 2 * 3600 },
    );
    await assert.rejects(
      verifyHopPeer(der(impostor.child.chain), options(), {
        transport: 'grpc',
        action: '/demo.ToolService/Run',
      }),
      (e: unknown) => e instanceof LanyardError && e.code === ErrorCode.SIGNATURE_INVALID,
    );
    assert.equal(evaluated.length, 0);
    assert.equal(decisions[0]!.decision, 'deny');
    assert.equal(decisions[0]!.policyVersion, undefined);
  });
});
