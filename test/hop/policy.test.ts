/**
 * The authorization step every hop helper shares (verifyHopPeer / runAuthorize), with real SVIDs from a test PKI:
 * authorizers and policy hooks, every way a hook can fail closed, the decision record, and the log line.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { BundleSet } from '../../src/bundle';
import { PolicyDeniedError } from '../../src/errors';
import type { HopDecision } from '../../src/hop/decision';
import { verifyHopPeer, verifyHopPeerSync } from '../../src/hop/peer';
import { runAuthorize, type HopPolicy } from '../../src/hop/policy';
import { authorizeAny, authorizeId, verifyX509Svid } from '../../src/verify';
import { GrpcStatus, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { createPki, issueSvid, type TrustDomainPki } from '../support/pki';
import { assertRefusal } from '../support/refusal';

describe('hop: authorizers, policy hooks and decisions', () => {
  // Built when the tests run, not when mocha loads the file: a certificate made and verified at load can expire
  // by the time a slow run reaches these tests.
  let pki: TrustDomainPki;
  let chain: Uint8Array[];
  let peer: ReturnType<typeof verifyX509Svid>;
  before(() => {
    pki = createPki('example.org');
    chain = issueSvid(pki, 'spiffe://example.org/agent').chain.map((c) => c.der);
    peer = verifyX509Svid(chain, pki.bundle);
  });
  const request = { transport: 'http' as const, action: 'GET /docs', service: 'spiffe://example.org/api' };

  it('an Authorizer allows by returning and refuses by throwing ERR_UNAUTHORIZED', async () => {
    assert.deepEqual(await runAuthorize(authorizeAny(), peer, request), {});
    await assert.rejects(runAuthorize(authorizeId('spiffe://example.org/other'), peer, request), (e) => {
      assertRefusal(e, 'ERR_UNAUTHORIZED');
      return true;
    });
  });

  it('a policy hook sees the request and reports its version on allow and deny', async () => {
    const seen: string[] = [];
    const hook: HopPolicy = async (p, r) => {
      seen.push(`${p.id.toString()} ${r.transport} ${r.action ?? ''} ${r.service}`);
      await Promise.resolve();
      return r.action === 'GET /docs'
        ? { allow: true, policyVersion: 'v7' }
        : { allow: false, reason: 'read only', policyVersion: 'v7' };
    };
    assert.deepEqual(await runAuthorize(hook, peer, request), { policyVersion: 'v7' });
    await assert.rejects(runAuthorize(hook, peer, { ...request, action: 'DELETE /docs' }), (e) => {
      assertRefusal(e, 'ERR_POLICY_DENIED');
      assert.match((e as Error).message, /read only/);
      assert.ok(e instanceof PolicyDeniedError);
      assert.equal(e.policyReason, 'read only');
      assert.equal(grpcStatusOf(e), GrpcStatus.PERMISSION_DENIED);
      return true;
    });
    assert.deepEqual(seen, [
      'spiffe://example.org/agent http GET /docs spiffe://example.org/api',
      'spiffe://example.org/agent http DELETE /docs spiffe://example.org/api',
    ]);
  });

  it('fails closed: a truthy but not-true allow, a null answer, a throw, a rejection', async () => {
    const bad: HopPolicy[] = [
      () => ({ allow: 'yes' }) as unknown as { allow: boolean },
      () => null as unknown as { allow: boolean },
      () => {
        throw new Error('engine down');
      },
      () => Promise.reject(new Error('engine down')),
    ];
    for (const hook of bad) {
      const decisions: HopDecision[] = [];
      await assert.rejects(
        verifyHopPeer(
          chain,
          { bundles: pki.bundle, authorize: hook, onDecision: (d) => decisions.push(d) },
          request,
        ),
      );
      assert.equal(decisions.length, 1);
      assert.equal(decisions[0]!.decision, 'deny');
      assert.equal(decisions[0]!.peerId, 'spiffe://example.org/agent');
    }
  });

  it('the synchronous path (TLS clients) refuses an async policy instead of ignoring it', () => {
    assert.throws(
      () =>
        verifyHopPeerSync(chain, { bundles: pki.bundle, authorize: async () => ({ allow: true }) }, request),
      (e) => {
        assertRefusal(e, 'ERR_INVALID_ARGUMENT');
        return true;
      },
    );
  });

  it('a listener that throws changes nothing, and the refusal reaches the log with its code and reason', async () => {
    const lines: string[] = [];
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write(chunk: Buffer, _e, cb) {
          lines.push(chunk.toString());
          cb();
        },
      }),
    );
    const options = {
      bundles: pki.bundle,
      authorize: authorizeId('spiffe://example.org/other'),
      logger,
      service: 'api',
      onDecision: () => {
        throw new Error('audit sink down');
      },
    };
    await assert.rejects(verifyHopPeer(chain, options, request), (e) => {
      assertRefusal(e, 'ERR_UNAUTHORIZED');
      return true;
    });
    const refusal = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'hop: peer refused');
    assert.ok(refusal, lines.join(''));
    assert.equal(refusal.reason, 'ERR_UNAUTHORIZED');
    assert.equal(refusal.peer, 'spiffe://example.org/agent');
    assert.match(String(refusal.message), /is not SPIFFE ID spiffe:\/\/example\.org\/other/);
    assert.ok(lines.some((l) => l.includes('onDecision listener threw')));
    // A peer that verifies and is allowed is logged at debug, once.
    await verifyHopPeer(chain, { ...options, authorize: authorizeAny() }, request);
    assert.ok(lines.some((l) => l.includes('hop: peer allowed')));
  });

  it('trustDomain restricts a federated bundle set: a partner SVID is ERR_WRONG_TRUST_DOMAIN', async () => {
    const partner = createPki('partner.test');
    const other = issueSvid(partner, 'spiffe://partner.test/agent').chain.map((c) => c.der);
    const bundles = new BundleSet([pki.bundle, partner.bundle]);
    const accepted = await verifyHopPeer(other, { bundles, authorize: authorizeAny() }, request);
    assert.equal(accepted.spiffeId, 'spiffe://partner.test/agent');
    await assert.rejects(
      verifyHopPeer(other, { bundles, authorize: authorizeAny(), trustDomain: 'example.org' }, request),
      (e) => {
        assertRefusal(e, 'ERR_WRONG_TRUST_DOMAIN');
        return true;
      },
    );
  });

  it('no chain at all: ERR_CLIENT_CERT_REQUIRED, recorded without a peer', async () => {
    const decisions: HopDecision[] = [];
    await assert.rejects(
      verifyHopPeer(
        [],
        { bundles: pki.bundle, authorize: authorizeAny(), onDecision: (d) => decisions.push(d) },
        request,
      ),
      (e) => {
        assertRefusal(e, 'ERR_CLIENT_CERT_REQUIRED');
        return true;
      },
    );
    assert.equal(decisions[0]?.peerId, undefined);
    assert.equal(decisions[0]?.reason, 'ERR_CLIENT_CERT_REQUIRED');
  });
});
