/**
 * Decisions over real verified SVIDs: deny by default, a permit allows with its id as the reason, a forbid
 * wins over a permit, an error in any policy denies, and issuance keeps only the scopes a policy permits.
 */
import assert from 'node:assert/strict';
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import {
  callRequest,
  compilePolicies,
  issueRequest,
  LANYARD_CEDAR_SCHEMA,
  PolicySet,
  readPolicyFiles,
  type CedarRequest,
} from '../../src/policy';
import { SpiffeId } from '../../src/spiffe';
import type { VerifyX509SvidResult } from '../../src/verify';
import { tempPolicyDir, verifiedPeers } from './helpers';
import { removeDir } from '../support/tmp';

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
  let planner: VerifyX509SvidResult;
  let toolRunner: VerifyX509SvidResult;

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

  it('remembered decisions equal fresh ones, and a caller cannot alter what is remembered', () => {
    const uncached = new PolicySet(set.compiled, { decisionCacheSize: 0 });
    const requests = [
      { peer: toolRunner, action: '/demo.ToolService/Run', service: 'service-a', transport: 'grpc' },
      { peer: planner, action: '/demo.ToolService/Run', service: 'service-a', transport: 'grpc' },
      { peer: toolRunner, action: '/demo.ToolService/AdminReset', service: 'service-a' },
      { peer: toolRunner, action: '/x', service: 'service-b' },
    ];
    for (let round = 0; round < 3; round++) {
      for (const req of requests) assert.deepEqual(set.evaluateCall(req), uncached.evaluateCall(req));
    }
    const first = set.evaluateCall(requests[0]!);
    first.reasons.push('tampered');
    first.decision = 'deny';
    assert.deepEqual(set.evaluateCall(requests[0]!).reasons, ['runner-calls-a-for-alice']);
    assert.equal(set.evaluateCall(requests[0]!).decision, 'allow');
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

describe('policy: what the engine builds for Cedar matches the schema', () => {
  // Evaluation skips Cedar's per-request schema validation (policies are validated at load); this proves the
  // requests and entities it builds would pass it, for peers with and without a context.
  const { planner, toolRunner } = verifiedPeers();
  const bare = { id: SpiffeId.parse('spiffe://example.org/agent/bare') };
  const allowAll = {
    staticPolicies: { all: 'permit (principal, action, resource);' },
  };

  it('every call and issue request validates against LANYARD_CEDAR_SCHEMA', () => {
    const requests: CedarRequest[] = [];
    for (const peer of [planner, toolRunner, bare]) {
      requests.push(
        callRequest({ peer, action: '/x.Y/Z', service: 'spiffe://example.org/s', transport: 'grpc' }),
      );
      requests.push(callRequest({ peer, action: '', service: 'svc' }));
      for (const kind of ['workload', 'session', 'delegation'] as const) {
        requests.push(issueRequest({ subject: peer, scope: 'docs:read', kind }));
      }
    }
    for (const r of requests) {
      const answer = cedar.isAuthorized({
        ...r,
        schema: LANYARD_CEDAR_SCHEMA,
        validateRequest: true,
        policies: allowAll,
      });
      assert.equal(answer.type, 'success', JSON.stringify(answer));
      assert.equal(answer.type === 'success' && answer.response.decision, 'allow');
      assert.deepEqual(cedar.checkParseEntities({ entities: r.entities, schema: LANYARD_CEDAR_SCHEMA }), {
        type: 'success',
      });
    }
  });

  it('a request off the schema would be refused by that validation (the check has teeth)', () => {
    const r = callRequest({ peer: toolRunner, action: '/x', service: 's' });
    const broken = { ...r, context: { transport: 'grpc' } };
    const answer = cedar.isAuthorized({
      ...broken,
      schema: LANYARD_CEDAR_SCHEMA,
      validateRequest: true,
      policies: allowAll,
    });
    assert.equal(answer.type, 'failure');
    const entity = { ...r.entities[0]!, attrs: { ...r.entities[0]!.attrs, delegationDepth: '1' } };
    assert.equal(
      cedar.checkParseEntities({ entities: [entity], schema: LANYARD_CEDAR_SCHEMA }).type,
      'failure',
    );
  });
});
