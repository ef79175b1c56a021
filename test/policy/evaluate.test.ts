/**
 * Decisions over real verified SVIDs: deny by default, a permit allows with its id as the reason, a forbid
 * wins over a permit, an error in any policy denies, and issuance keeps only the scopes a policy permits.
 */
import assert from 'node:assert/strict';
import { compilePolicies, PolicySet, readPolicyFiles } from '../../src/policy';
import { SpiffeId } from '../../src/spiffe';
import type { VerifiedSvid } from '../../src/verify';
import { removeDir, tempPolicyDir, verifiedPeers } from './helpers';

const POLICIES = `
@id("runner-calls-a-for-alice")
permit (principal, action == Lanyard::Action::"call", resource == Lanyard::Service::"service-a")
when {
  principal.rootPrincipal == "alice" &&
  principal.principalProvenance == "verified" &&
  principal.delegatedBy.contains("spiffe://example.org/agent/planner") &&
  context.operation like "/demo.ToolService/*"
};

@id("no-admin-operations")
forbid (principal, action == Lanyard::Action::"call", resource)
when { context.operation like "*/Admin*" };

@id("alice-may-read-docs")
permit (principal, action == Lanyard::Action::"issue", resource == Lanyard::Scope::"docs:read")
when { principal.rootPrincipal == "alice" && context.kind == "session" };

@id("overflowing")
forbid (principal, action == Lanyard::Action::"call", resource == Lanyard::Service::"service-b")
when { principal.delegationDepth + 9223372036854775807 > 0 };

@id("anyone-calls-b")
permit (principal, action == Lanyard::Action::"call", resource == Lanyard::Service::"service-b");
`;

describe('policy: evaluating requests at a hop and at issuance', () => {
  let dir: string;
  let set: PolicySet;
  let planner: VerifiedSvid;
  let toolRunner: VerifiedSvid;

  before(() => {
    dir = tempPolicyDir({ 'demo.cedar': POLICIES });
    set = new PolicySet(compilePolicies(readPolicyFiles([dir])));
    ({ planner, toolRunner } = verifiedPeers());
  });
  after(() => removeDir(dir));

  it('allows the delegated tool-runner to call service A for alice, naming the permit and the version', () => {
    const d = set.evaluateCall({
      peer: toolRunner,
      action: '/demo.ToolService/Run',
      service: 'service-a',
      transport: 'grpc',
    });
    assert.deepEqual(d, {
      decision: 'allow',
      reasons: ['runner-calls-a-for-alice'],
      errors: [],
      policyVersion: set.version,
    });
  });

  it('denies by default: the planner itself (not delegated), another service, another operation', () => {
    for (const req of [
      { peer: planner, action: '/demo.ToolService/Run', service: 'service-a' },
      { peer: toolRunner, action: '/demo.ToolService/Run', service: 'service-c' },
      { peer: toolRunner, action: '/demo.Other/Run', service: 'service-a' },
    ]) {
      const d = set.evaluateCall(req);
      assert.equal(d.decision, 'deny', JSON.stringify(req.action));
      assert.deepEqual(d.reasons, []);
      assert.equal(d.policyVersion, set.version);
    }
  });

  it('a forbid wins over a permit and is named', () => {
    const d = set.evaluateCall({
      peer: toolRunner,
      action: '/demo.ToolService/AdminReset',
      service: 'service-a',
    });
    assert.equal(d.decision, 'deny');
    assert.deepEqual(d.reasons, ['no-admin-operations']);
  });

  it('an error in any policy denies, even though the erroring policy is a forbid Cedar would skip', () => {
    const d = set.evaluateCall({ peer: toolRunner, action: '/x', service: 'service-b' });
    assert.equal(d.decision, 'deny');
    assert.match(d.errors.join(), /overflowing: .*overflow/);
  });

  it('a peer without an agent context is judged on its SPIFFE ID alone and denied here', () => {
    const bare = { id: SpiffeId.parse('spiffe://example.org/agent/tool-runner') };
    assert.equal(
      set.evaluateCall({ peer: bare, action: '/demo.ToolService/Run', service: 'service-a' }).decision,
      'deny',
    );
  });

  it('issuance keeps only the scopes a policy permits, per kind and principal', () => {
    assert.deepEqual(set.permittedScopes(planner, ['docs:read', 'tools:run', 'docs:read'], 'session'), [
      'docs:read',
      'docs:read',
    ]);
    assert.deepEqual(set.permittedScopes(planner, ['docs:read'], 'workload'), []);
    const bob = {
      id: planner.id,
      context: { ...planner.context!, principal: { ...planner.context!.principal, id: 'bob' } },
    };
    assert.deepEqual(set.permittedScopes(bob, ['docs:read'], 'session'), []);
    const issue = set.evaluateIssue({ subject: planner, scope: 'docs:read', kind: 'session' });
    assert.deepEqual(issue.reasons, ['alice-may-read-docs']);
  });
});
