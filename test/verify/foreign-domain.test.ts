/**
 * A federated partner's CA may vouch for its own trust domain only: an agent context that attributes a hop, the
 * principal or the issuing server to another domain is refused (ERR_CONTEXT_FOREIGN_DOMAIN), whatever bundles the
 * verifier holds. Real CAs for both domains, every signature genuine.
 */
import assert from 'node:assert/strict';
import { ErrorCode } from '../../src/errors';
import { requirePrincipal, VerificationCache, verifyX509Svid } from '../../src/verify';
import type { AgentContext } from '../../src/x509/agent-context/types';
import { delegatedPair, issueSvid, type Svid } from '../support/pki';
import {
  federation,
  forgedDelegation,
  OURS,
  PARTNER,
  PARTNER_BOT,
  partnerContext,
  partnerSvid,
  type Federation,
} from '../support/federation';
import { expectRefusal } from '../support/refusal';

describe('agent context: attribution to the leaf trust domain (federation)', () => {
  let f: Federation;
  before(() => {
    f = federation();
  });
  const verify = (svid: Svid) => verifyX509Svid(svid.chain, f.bundles, { cache: null });

  it("refuses the reported forgery: our principal, root session and planner link under the partner's CA", () => {
    const forged = forgedDelegation(f);
    expectRefusal(
      () => verify(forged),
      ErrorCode.CONTEXT_FOREIGN_DOMAIN,
      /delegation link 0 "spiffe:\/\/example\.org\/agent\/planner" is not of the SVID's trust domain "partner\.net"/,
    );
    // Not a cache artefact: a shared cache refuses it too, and does not remember it.
    expectRefusal(() => verifyX509Svid(forged.chain, f.bundles), ErrorCode.CONTEXT_FOREIGN_DOMAIN);
    expectRefusal(() => verifyX509Svid(forged.chain, f.bundles), ErrorCode.CONTEXT_FOREIGN_DOMAIN);
  });

  const ourPlanner = `spiffe://${OURS}/agent/planner`;
  const refusals: [string, (c: AgentContext) => void, RegExp][] = [
    [
      'the issuing server is ours',
      (c) => (c.provenance.issuer = `spiffe://${OURS}/lanyard/server`),
      /the issuing server/,
    ],
    [
      'the principal was asserted by our agent',
      (c) => (c.principal = { id: 'bob', issuer: ourPlanner, provenance: `asserted-by:${ourPlanner}` }),
      /asserted the principal/,
    ],
    [
      'a partner assertion whose issuer names our agent',
      (c) =>
        (c.principal = {
          id: 'bob',
          issuer: ourPlanner,
          provenance: `asserted-by:spiffe://${PARTNER}/agent/asserter`,
        }),
      /the principal issuer/,
    ],
    [
      'the workload principal is our agent',
      (c) =>
        (c.principal = {
          id: ourPlanner,
          issuer: `spiffe://${PARTNER}/lanyard/server`,
          provenance: 'workload',
        }),
      /the workload principal/,
    ],
    [
      'the workload principal is our agent, spelled in another case',
      (c) =>
        (c.principal = {
          id: `SPIFFE://${OURS}/agent/planner`,
          issuer: `spiffe://${PARTNER}/lanyard/server`,
          provenance: 'workload',
        }),
      /the workload principal/,
    ],
    [
      "the workload principal's server is ours",
      (c) =>
        (c.principal = {
          id: PARTNER_BOT,
          issuer: `spiffe://${OURS}/lanyard/server`,
          provenance: 'workload',
        }),
      /the principal issuer/,
    ],
  ];
  for (const [what, edit, message] of refusals) {
    it(`refuses a partner SVID when ${what}`, () => {
      expectRefusal(
        () => verify(partnerSvid(f, partnerContext(edit))),
        ErrorCode.CONTEXT_FOREIGN_DOMAIN,
        message,
      );
    });
  }

  it('a context cached for our leaf is not reused for a partner leaf carrying the same bytes', () => {
    // The cache holds our tool-runner's context, checked against our trust domain. The partner's CA copies those
    // exact bytes (and the key) into an SVID of its own: attribution must be checked against partner.net, not
    // answered from the entry made for example.org.
    const cache = new VerificationCache();
    const ours = f.real.child;
    verifyX509Svid(ours.chain, f.bundles, { cache });
    const copied = issueSvid(f.partner, `spiffe://${PARTNER}/agent/tool-runner`, {
      key: ours.key,
      context: ours.context,
      ttlSeconds: 600,
    });
    expectRefusal(() => verifyX509Svid(copied.chain, f.bundles, { cache }), ErrorCode.CONTEXT_FOREIGN_DOMAIN);
    assert.equal(cache.stats().contexts.hits, 0);
  });

  it('refuses a partner-internal link whose binding delegates to one of our IDs, before any link rule', () => {
    const pair = delegatedPair(
      f.partner,
      { name: 'planner', scopes: ['docs:read'], ttlSeconds: 600 },
      { name: 'bot', scopes: ['docs:read'], ttlSeconds: 300 },
    );
    const ctx = structuredClone(pair.child.context);
    ctx.provenance.issuer = `spiffe://${PARTNER}/lanyard/server`;
    ctx.delegation[0]!.binding.childId = `spiffe://${OURS}/agent/tool-runner`;
    expectRefusal(
      () => verify(partnerSvid(f, ctx, pair.child.key)),
      ErrorCode.CONTEXT_FOREIGN_DOMAIN,
      /delegation link 0 delegates to "spiffe:\/\/example\.org\/agent\/tool-runner"/,
    );
  });

  describe('what federation still accepts', () => {
    it('a plain partner SVID (no agent context) verifies with the BundleSet', () => {
      const plain = verify(partnerSvid(f, undefined));
      assert.equal(plain.id.toString(), PARTNER_BOT);
      assert.equal(plain.context, undefined);
    });

    it("a partner SVID whose context names only the partner's domain verifies", () => {
      const own = verify(partnerSvid(f, partnerContext()));
      assert.equal(own.context?.principal.provenance, 'verified');
    });

    it("a partner's own delegated chain verifies", () => {
      const pair = delegatedPair(
        f.partner,
        { name: 'planner', scopes: ['docs:read'], ttlSeconds: 600 },
        { name: 'bot', scopes: ['docs:read'], ttlSeconds: 300 },
      );
      const ok = verify(pair.child);
      assert.deepEqual(
        ok.context?.delegation.map((l) => l.spiffeId),
        [`spiffe://${PARTNER}/agent/planner`],
      );
    });

    it('our own chain verifies with the same BundleSet (control)', () => {
      assert.equal(verify(f.real.child).context?.delegation.length, 1);
    });
  });

  describe('requirePrincipal({ trustDomain }): whose word on a verified principal', () => {
    const alice = { id: 'alice', issuer: 'https://idp.example.org', provenance: 'verified' } as const;

    it("accepts alice verified by our domain, and refuses the partner's claim of the same principal", () => {
      const ours = requirePrincipal({ ...alice, trustDomain: OURS });
      ours(verify(f.real.child));
      const partnersClaim = verify(partnerSvid(f, partnerContext()));
      expectRefusal(
        () => ours(partnersClaim),
        ErrorCode.UNAUTHORIZED,
        /established by trust domain "partner\.net", "example\.org" is required/,
      );
      // Without it, the partner's word is taken: the verifier trusts the partner's CA for partner.net.
      requirePrincipal(alice)(partnersClaim);
    });

    it('checks the trust domain alone and parses it when built', () => {
      expectRefusal(
        () => requirePrincipal({ trustDomain: OURS })(verify(partnerSvid(f, partnerContext()))),
        'ERR_UNAUTHORIZED',
      );
      assert.throws(() => requirePrincipal({ trustDomain: 'Not A Domain' }), /trust domain/i);
      assert.throws(() => requirePrincipal({}), TypeError);
    });
  });
});
