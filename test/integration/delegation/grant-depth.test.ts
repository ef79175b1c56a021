/**
 * A parent bounds how many further delegations its child may make (CreateGrant max_depth; `grantFor({ maxDepth })`)
 * and the server holds it, on the grant and then as the child's session depth limit: a real server on loopback,
 * chains of real redemptions. A bound wider than the parent may allow, a negative one, and one for a child of
 * another trust domain are refused with their code and gRPC status, and nothing is written.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { DelegationTooDeepError, InvalidArgumentError } from '../../../src/errors';
import {
  grantFor,
  HandoffKey,
  redeemGrant as redeemWith,
  startSession as startWith,
} from '../../../src/hop/handoff';
import type { ServerX509Source } from '../../../src/client/server-x509-source';
import { verifyX509Svid } from '../../../src/verify';
import { rejectsGrpcWithCode, rejectsWithWireCode } from '../../support/grpc-refusal';
import { workloadSource } from '../../support/hop';
import {
  createGrant,
  id,
  redeemGrant,
  register,
  startSession,
  type Agent,
  type TestGrant,
} from '../../support/sessions';
import { startTestServer, type TestServer } from '../../support/test-server';
import { newKey } from '../../support/public-client';

const FOREIGN_CHILD = 'spiffe://partner.example/agents/summariser';

describe('grant depth: a bound on how far the child may delegate', function () {
  this.timeout(120_000);
  let s: TestServer;
  const wl: Record<string, Agent> = {};

  before(async () => {
    s = await startTestServer();
    // Every entry allows 4 hops: what stops a chain below is the grant's bound, never an entry.
    const next: [string, string[]][] = [
      ['a', [id('b'), FOREIGN_CHILD]],
      ['b', [id('c')]],
      ['c', [id('d')]],
      ['d', [id('e')]],
      ['e', []],
    ];
    for (const [name, delegates] of next) {
      wl[name] = await register(s, name, {
        allowedScopes: ['docs:read'],
        maxDelegationDepth: 4,
        allowedDelegates: delegates,
      });
    }
  });
  after(() => s.stop());

  const root = async (): Promise<Agent> => (await startSession(s, wl.a!, { scopes: ['docs:read'] })).agent;

  /** `parent` grants `child` (with `maxDepth` when given) and the child redeems: its session and the grant. */
  const hop = async (
    parent: Agent,
    child: string,
    maxDepth?: number,
  ): Promise<{ agent: Agent; grant: TestGrant; depthLimit: number }> => {
    const grant = await createGrant(s, parent, {
      childId: id(child),
      scopes: ['docs:read'],
      ...(maxDepth !== undefined ? { maxDepth } : {}),
    });
    const agent = await redeemGrant(s, wl[child]!, grant);
    const sessionId = verifyX509Svid(agent.chain, s.running.ca.bundle()).context!.sessionId;
    const { session } = await s.client.getSession({ sessionId });
    return { agent, grant, depthLimit: session!.depthLimit };
  };

  /** The grant a stored CreateGrant for `childKey` would have made (its id is the key's SHA-256). */
  const grantOf = (childKey: TestGrant['childKey']): TestGrant => ({
    grantId: HandoffKey.fromPrivateKey(childKey).id,
    childKey,
  });

  /** The grant is not stored: the key it named is still free to be granted (a stored one would be a replay). */
  const nothingWritten = async (
    parent: Agent,
    child: string,
    childKey: TestGrant['childKey'],
  ): Promise<void> => {
    const again = await createGrant(s, parent, { childId: id(child), scopes: ['docs:read'], childKey });
    assert.equal(typeof again.grantId, 'string');
  };

  it('without a bound the chain reaches what the entries allow, each grant saying how far its child may go', async () => {
    const a = await root();
    const b = await hop(a, 'b');
    const c = await hop(b.agent, 'c');
    const d = await hop(c.agent, 'd');
    assert.deepEqual(
      [b.grant.maxDepth, c.grant.maxDepth, d.grant.maxDepth],
      [3, 2, 1],
      "from the parent's side: the root's 4 hops, less the child's own",
    );
    assert.deepEqual([b.depthLimit, c.depthLimit, d.depthLimit], [4, 4, 4]);
    await hop(d.agent, 'e');
  });

  it('max_depth 1: the child delegates once, its own child cannot; the refusal writes nothing', async () => {
    const a = await root();
    const b = await hop(a, 'b', 1);
    assert.equal(b.grant.maxDepth, 1);
    assert.equal(b.depthLimit, 2, "the child's session: its depth 1 plus one further hop");
    const c = await hop(b.agent, 'c');
    assert.equal(c.grant.maxDepth, 0, 'the grandchild inherits what is left: nothing');
    assert.equal(c.depthLimit, 2);
    const childKey = newKey().key;
    const refused = await rejectsGrpcWithCode(
      createGrant(s, c.agent, { childId: id('d'), scopes: ['docs:read'], childKey }),
      grpc.status.PERMISSION_DENIED,
      'ERR_DELEGATION_TOO_DEEP',
      'at most 2',
    );
    assert.ok(refused.details.length > 0);
    await rejectsWithWireCode(redeemGrant(s, wl.d!, grantOf(childKey)), 'ERR_GRANT_NOT_FOUND');
    // The child at its bound cannot widen it for its own child either.
    await rejectsGrpcWithCode(
      createGrant(s, b.agent, { childId: id('c'), scopes: ['docs:read'], maxDepth: 1 }),
      grpc.status.PERMISSION_DENIED,
      'ERR_DELEGATION_TOO_DEEP',
      'at most 0',
    );
  });

  it("max_depth 0: the child's session cannot grant at all", async () => {
    const a = await root();
    const b = await hop(a, 'b', 0);
    assert.equal(b.grant.maxDepth, 0);
    assert.equal(b.depthLimit, 1);
    const childKey = newKey().key;
    await rejectsGrpcWithCode(
      createGrant(s, b.agent, { childId: id('c'), scopes: ['docs:read'], childKey }),
      grpc.status.PERMISSION_DENIED,
      'ERR_DELEGATION_TOO_DEEP',
    );
    await rejectsWithWireCode(redeemGrant(s, wl.c!, grantOf(childKey)), 'ERR_GRANT_NOT_FOUND');
  });

  it('a bound wider than the parent may allow is refused, not clamped; the widest allowed is kept', async () => {
    const a = await root();
    const childKey = newKey().key;
    await rejectsGrpcWithCode(
      createGrant(s, a, { childId: id('b'), scopes: ['docs:read'], childKey, maxDepth: 4 }),
      grpc.status.PERMISSION_DENIED,
      'ERR_DELEGATION_TOO_DEEP',
      'may delegate 4 hops further',
      'at most 3',
    );
    await nothingWritten(a, 'b', childKey);
    const b = await hop(a, 'b', 3);
    assert.equal(b.grant.maxDepth, 3);
    assert.equal(b.depthLimit, 4);
  });

  it('a negative bound is refused as invalid; nothing is written', async () => {
    const a = await root();
    const childKey = newKey().key;
    await rejectsGrpcWithCode(
      createGrant(s, a, { childId: id('b'), scopes: ['docs:read'], childKey, maxDepth: -1 }),
      grpc.status.INVALID_ARGUMENT,
      'ERR_INVALID_ARGUMENT',
      'max_depth must be an integer >= 0',
    );
    await nothingWritten(a, 'b', childKey);
  });

  it('a bound for a child of another trust domain is refused: its server would never see it', async () => {
    const a = await root();
    const childKey = newKey().key;
    await rejectsGrpcWithCode(
      createGrant(s, a, { childId: FOREIGN_CHILD, scopes: ['docs:read'], childKey, maxDepth: 1 }),
      grpc.status.INVALID_ARGUMENT,
      'ERR_INVALID_ARGUMENT',
      'another trust domain',
    );
    // Without a bound the same cross-domain grant is made (its own server applies its entry's limit).
    const made = await createGrant(s, a, { childId: FOREIGN_CHILD, scopes: ['docs:read'], childKey });
    assert.equal(made.maxDepth, 3);
  });

  describe('through the client library (grantFor, redeemGrant)', () => {
    const sources: { close(): Promise<void> | void }[] = [];
    let parentWl: ServerX509Source;
    let childWl: ServerX509Source;
    before(async () => {
      parentWl = await workloadSource(s, 'lib-parent', {
        allowedScopes: ['docs:read'],
        maxDelegationDepth: 4,
        allowedDelegates: [id('lib-child')],
      });
      childWl = await workloadSource(s, 'lib-child', {
        allowedScopes: ['docs:read'],
        maxDelegationDepth: 4,
        allowedDelegates: [id('lib-grandchild')],
      });
      sources.push(parentWl, childWl);
    });
    after(async () => {
      for (const c of sources.reverse()) await c.close();
    });

    it('maxDepth 0 holds: the redeemed child is refused with DelegationTooDeepError', async () => {
      const server = s.running.publicAddress;
      const parent = await startWith({ server, source: parentWl, scopes: ['docs:read'] });
      sources.push(parent);
      const key = HandoffKey.generate();
      const grant = await grantFor({
        server,
        source: parent,
        childId: id('lib-child'),
        childKey: key.id,
        scopes: ['docs:read'],
        maxDepth: 0,
      });
      assert.equal(grant.maxDepth, 0);
      const child = await redeemWith({ server, source: childWl, key });
      sources.push(child);
      await assert.rejects(
        grantFor({
          server,
          source: child,
          childId: id('lib-grandchild'),
          childKey: HandoffKey.generate().id,
          scopes: ['docs:read'],
        }),
        (e: unknown) => e instanceof DelegationTooDeepError && e.code === 'ERR_DELEGATION_TOO_DEEP',
      );
    });

    it('refuses a bound that is not a whole number >= 0 before calling the server', async () => {
      const server = s.running.publicAddress;
      for (const maxDepth of [1.5, -1, Number.NaN]) {
        await assert.rejects(
          grantFor({
            server,
            source: parentWl,
            childId: id('lib-child'),
            childKey: HandoffKey.generate().id,
            scopes: [],
            maxDepth,
          }),
          (e: unknown) => e instanceof InvalidArgumentError && /maxDepth/.test(e.message),
        );
      }
    });
  });
});
