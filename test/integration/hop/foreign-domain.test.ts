/**
 * The federation forgery at a real hop: our service trusts our bundle and a partner's (a BundleSet), and the
 * partner's CA mints its bot an SVID claiming our principal, our root session and a link from our planner. Over
 * https on 127.0.0.1, a hop that requires alice as a verified principal (requirePrincipal) and an express hop
 * whose Cedar policy permits calls delegated by our planner (`delegatedBy`) both refuse it with
 * ERR_CONTEXT_FOREIGN_DOMAIN before the authorizer or policy runs, and still accept our own delegated SVID and
 * a partner SVID that claims nothing of ours.
 */
import assert from 'node:assert/strict';
import * as https from 'node:https';
import express from 'express';
import { lanyardExpress } from '../../../src/hop/express';
import { createHopHttpsServer, HopHttpsAgent } from '../../../src/hop/tls';
import { cedarHopPolicy, PolicyEngine, type CedarDecision } from '../../../src/policy';
import { authorizeId, requirePrincipal } from '../../../src/verify';
import { issueSvid, type Svid } from '../../support/pki';
import { tempPolicyDir } from '../../policy/helpers';
import {
  federation,
  forgedDelegation,
  OURS,
  PARTNER,
  partnerContext,
  partnerSvid,
  type Federation,
} from '../../support/federation';
import { closeServer, DecisionLog, listenHttps, listenLocal, pkiSource } from '../../support/hop';
import { removeDir } from '../../support/tmp';

const SERVICE_ID = `spiffe://${OURS}/services/docs`;

const POLICY = `
@id("planner-delegates-docs")
permit (principal, action == Lanyard::Action::"call", resource == Lanyard::Service::"docs")
when {
  principal.rootPrincipal == "alice" &&
  principal.delegatedBy.contains("spiffe://${OURS}/agent/planner")
};
`;

interface Answer {
  status: number;
  code?: string;
}

function get(port: number, agent: https.Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/docs', agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          const body = JSON.parse(text) as { error?: { code: string } };
          resolve({
            status: res.statusCode ?? 0,
            ...(body.error !== undefined ? { code: body.error.code } : {}),
          });
        });
      })
      .on('error', reject);
  });
}

describe('hop: a federated CA cannot forge our principal or delegation chain', function () {
  this.timeout(30_000);
  let f: Federation;
  let dir: string;
  let engine: PolicyEngine;
  const servers: https.Server[] = [];
  const agents: https.Agent[] = [];
  const evaluated: CedarDecision[] = [];
  const decisions = new DecisionLog();
  let principalPort: number;
  let cedarPort: number;

  before(async () => {
    f = federation();
    const service = pkiSource(issueSvid(f.ours, SERVICE_ID), [f.ours.bundle, f.partner.bundle]);

    // A hop that serves alice's tasks only.
    const byPrincipal = createHopHttpsServer(
      {
        source: service,
        // Holding the partner's bundle is not consent to serve its workloads: the hop says so (issue 17).
        federatedTrustDomains: [PARTNER],
        authorize: requirePrincipal({
          id: 'alice',
          issuer: 'https://idp.example.org',
          provenance: 'verified',
        }),
        onDecision: decisions.listener,
        cache: null,
      },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      },
    );
    servers.push(byPrincipal);
    principalPort = await listenLocal(byPrincipal);

    // A hop whose Cedar policy trusts what our planner delegated.
    dir = tempPolicyDir({ 'docs.cedar': POLICY });
    engine = PolicyEngine.load({ sources: [dir], watch: false });
    const app = express();
    app.use(
      lanyardExpress({
        source: service,
        service: 'docs',
        authorize: cedarHopPolicy(engine, { onDecision: (d) => evaluated.push(d) }),
        onDecision: decisions.listener,
        cache: null,
      }),
    );
    app.get('/docs', (_req, res) => res.json({}));
    const byPolicy = await listenHttps(service, app);
    servers.push(byPolicy.server);
    cedarPort = byPolicy.port;
  });
  after(async () => {
    for (const a of agents) a.destroy();
    await Promise.all(servers.map(closeServer));
    engine.close();
    removeDir(dir);
  });

  const as = (svid: Svid): https.Agent => {
    const a = new HopHttpsAgent({
      source: pkiSource(svid, [f.ours.bundle]),
      authorize: authorizeId(SERVICE_ID),
      caTrustDomains: [OURS],
    });
    agents.push(a);
    return a;
  };

  it('requirePrincipal: the forgery is refused with 401 ERR_CONTEXT_FOREIGN_DOMAIN; our alice is served', async () => {
    const forged = await get(principalPort, as(forgedDelegation(f)));
    assert.deepEqual(forged, { status: 401, code: 'ERR_CONTEXT_FOREIGN_DOMAIN' });
    const d = await decisions.next((x) => x.reason === 'ERR_CONTEXT_FOREIGN_DOMAIN');
    assert.equal(d.decision, 'deny');
    assert.equal(d.context, undefined, 'a refused context is never handed on as proven');
    assert.deepEqual(await get(principalPort, as(f.real.child)), { status: 200 });
  });

  it("requirePrincipal: a partner SVID claiming nothing of ours is served on the partner's word", async () => {
    assert.deepEqual(await get(principalPort, as(partnerSvid(f, partnerContext()))), { status: 200 });
  });

  it('a partner SVID at a hop that does not list the partner domain is refused (ERR_WRONG_TRUST_DOMAIN)', async () => {
    // The Cedar hop holds the same BundleSet but names no federated domain.
    const plain = await get(cedarPort, as(partnerSvid(f, partnerContext())));
    assert.deepEqual(plain, { status: 401, code: 'ERR_WRONG_TRUST_DOMAIN' });
  });

  it('Cedar on delegatedBy: the forgery is refused before the policy runs; our delegated SVID is allowed', async () => {
    evaluated.length = 0;
    const forged = await get(cedarPort, as(forgedDelegation(f)));
    assert.deepEqual(forged, { status: 401, code: 'ERR_CONTEXT_FOREIGN_DOMAIN' });
    assert.equal(evaluated.length, 0, 'the policy never saw the forged chain');
    assert.deepEqual(await get(cedarPort, as(f.real.child)), { status: 200 });
    assert.deepEqual(
      evaluated.map((e) => e.decision),
      ['allow'],
    );
  });
});
