import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { X509Bundle } from '../../src/bundle';
import { ErrorCode } from '../../src/errors';
import { TrustDomain } from '../../src/spiffe';
import {
  StaticRevocationList,
  VerificationCache,
  verifyX509Svid,
  VerifyX509SvidOptions,
} from '../../src/verify';
import type { AgentContext, DelegationLink } from '../../src/x509/agent-context/types';
import { DEFAULT_AGENT_CONTEXT_OID } from '../../src/x509/agent-context/oid';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { ParsedCertificate } from '../../src/x509/certificate';
import {
  ALICE,
  asIssuer,
  baseContext,
  buildChain,
  createCa,
  delegate,
  Hop,
  Issued,
  issueSvid,
  makeLeaf,
  makeRoot,
  NOW,
  plannerChain,
  seconds,
  TD,
} from '../support/pki';
import { encodeAgentContext } from '../../src/x509/agent-context/codec';
import { issueX509Svid } from '../../src/x509/profiles';
import { at, BINDING, CTX, LINK, parseTlv, primitive, writeTlv } from '../x509/agent-context/tlv';
import { expectRefusal } from '../support/refusal';

describe('agent-context rules', () => {
  let ca: Issued;
  /** A second CA key of the same trust domain, also in the bundle: re-signing with it must not help a forger. */
  let ca2: Issued;
  let bundle: X509Bundle;
  let hops: Hop[];
  let planner: Hop, toolRunner: Hop, retrieval: Hop;

  before(() => {
    ca = createCa();
    ca2 = createCa();
    bundle = new X509Bundle(TrustDomain.parse(TD), { x509Authorities: [ca.cert, ca2.cert] });
    hops = plannerChain(ca);
    [planner, toolRunner, retrieval] = hops as [Hop, Hop, Hop];
  });

  const verify = (cert: ParsedCertificate, options: VerifyX509SvidOptions = {}) =>
    verifyX509Svid([cert], bundle, { cache: null, ...options });

  /** The retrieval hop's context, edited, in a fresh SVID for the same key, issued by `issuer`. */
  function reissued(
    edit: (ctx: AgentContext) => void,
    issuer: Issued = ca,
    id = retrieval.id,
  ): ParsedCertificate {
    const ctx = structuredClone(retrieval.context);
    edit(ctx);
    return issueSvid(issuer, id, { key: retrieval.key, context: ctx, ttlSeconds: 600 }).cert;
  }

  /** A docs:read link from `parent` to the retrieval hop's key, until the retrieval SVID's notAfter. */
  const linkToRetrieval = (parent: Hop, overrides?: Parameters<typeof delegate>[5]): DelegationLink =>
    delegate(
      parent,
      retrieval.id,
      retrieval.key.publicKey,
      ['docs:read'],
      retrieval.cert.notAfter,
      overrides,
    );

  /**
   * What a rogue CA can make for `hop` without its key: a new SVID for a fresh key (living `ttlSeconds`), and
   * a docs:read link to the retrieval hop signed with that key.
   */
  function impostorLink(hop: Hop, ttlSeconds: number): { fakeCert: ParsedCertificate; link: DelegationLink } {
    const fakeKey = generateSigningKeyPair('ec-p256');
    const fakeCert = issueSvid(ca, hop.id, {
      key: fakeKey,
      context: hop.context,
      ttlSeconds: ttlSeconds,
    }).cert;
    const fake: Hop = { ...hop, key: fakeKey, cert: fakeCert };
    const link = linkToRetrieval(fake);
    return { fakeCert, link };
  }

  describe('accepted chains', () => {
    it('an SVID without the extension has no context', () => {
      const key = generateSigningKeyPair();
      assert.equal(
        verify(issueSvid(ca, `spiffe://${TD}/plain`, { key, ttlSeconds: 600 }).cert).context,
        undefined,
      );
    });

    it('an undelegated session: no links, root session = session', () => {
      const { context } = verify(planner.cert);
      assert.equal(context?.delegation.length, 0);
      assert.equal(context?.rootSessionId, context?.sessionId);
      assert.deepEqual(context?.principal, planner.context.principal);
    });

    it('a real 2-link chain (planner -> tool-runner -> retrieval), every link signature checked', () => {
      const cache = new VerificationCache();
      const { context } = verify(retrieval.cert, { cache });
      assert.deepEqual(
        context?.delegation.map((l) => l.spiffeId),
        [planner.id, toolRunner.id],
      );
      assert.deepEqual(context?.scopes, ['docs:read']);
      assert.equal(cache.stats().links.misses, 2, 'both link signatures were verified');
      assert.ok(
        Object.isFrozen(context) && Object.isFrozen(context.delegation) && Object.isFrozen(context.scopes),
      );
    });

    it('a real 3-link chain', () => {
      const chain = buildChain(ca, [
        { name: 'planner', scopes: ['a', 'b', 'c'], ttlSeconds: 3600 },
        { name: 'tool-runner', scopes: ['a', 'b'], ttlSeconds: 3000 },
        { name: 'service-a', scopes: ['a', 'b'], ttlSeconds: 2000 },
        { name: 'service-b', scopes: ['a'], ttlSeconds: 1000 },
      ]);
      const { context } = verify(chain[3]!.cert);
      assert.equal(context?.delegation.length, 3);
    });

    it('repeat verification of a leaf takes its checked context from the cache', () => {
      const cache = new VerificationCache({ chains: false });
      verify(retrieval.cert, { cache });
      verify(retrieval.cert, { cache });
      assert.equal(cache.stats().contexts.hits, 1);
    });

    it('another certificate carrying the same context bytes (a renewal) takes the checked context from the cache', () => {
      const cache = new VerificationCache();
      verify(retrieval.cert, { cache });
      const links = cache.stats().links;
      verify(
        reissued(() => {}, ca2),
        { cache },
      );
      assert.equal(cache.stats().contexts.hits, 1);
      assert.deepEqual(cache.stats().links, links, 'no link looked at again');
    });

    it('a context differing in one field (other bytes) is decoded and checked again, its links from the cache', () => {
      const cache = new VerificationCache();
      verify(retrieval.cert, { cache });
      verify(
        reissued((c) => {
          c.intent = 'another task';
        }),
        { cache },
      );
      assert.equal(cache.stats().contexts.hits, 0);
      assert.equal(cache.stats().contexts.misses, 2);
      assert.equal(cache.stats().links.hits, 2);
    });

    describe('a cached context is checked against each new leaf that carries it', () => {
      // The same context bytes under another leaf: everything the bytes alone decide is cached, what the leaf
      // decides is not. Each case first caches the context through the genuine leaf.
      const warm = (): VerificationCache => {
        const cache = new VerificationCache({ chains: false });
        verify(retrieval.cert, { cache });
        return cache;
      };

      it('a leaf with another SPIFFE ID than the last link delegates to (ERR_DELEGATION_LINK_INVALID)', () => {
        const cache = warm();
        const other = reissued(() => {}, ca, `spiffe://${TD}/impostor`);
        expectRefusal(() => verify(other, { cache }), ErrorCode.DELEGATION_LINK_INVALID);
        assert.equal(cache.stats().contexts.hits, 1, 'refused on the cached context');
      });

      it('a leaf holding another key than the last link delegates to (ERR_DELEGATION_LINK_INVALID)', () => {
        const cache = warm();
        const other = issueSvid(ca, retrieval.id, {
          context: retrieval.context,
          ttlSeconds: 600,
        }).cert;
        expectRefusal(() => verify(other, { cache }), ErrorCode.DELEGATION_LINK_INVALID);
        assert.equal(cache.stats().contexts.hits, 1, 'refused on the cached context');
      });

      it('a leaf expiring after the last binding (ERR_LIFETIME_ESCALATION)', () => {
        const cache = warm();
        const longer = issueSvid(ca, retrieval.id, {
          key: retrieval.key,
          context: retrieval.context,
          ttlSeconds: 7200,
        }).cert;
        expectRefusal(() => verify(longer, { cache }), ErrorCode.LIFETIME_ESCALATION);
        assert.equal(cache.stats().contexts.hits, 1, 'refused on the cached context');
      });

      it("the caller's depth bound (ERR_DELEGATION_TOO_DEEP)", () => {
        const cache = warm();
        expectRefusal(
          () =>
            verify(
              reissued(() => {}),
              { cache, maxDelegationDepth: 1 },
            ),
          ErrorCode.DELEGATION_TOO_DEEP,
        );
        assert.equal(cache.stats().contexts.hits, 1, 'refused on the cached context');
      });
    });

    it('the same context re-issued by the second CA key verifies (control for the tampering tests)', () => {
      assert.equal(verify(reissued(() => {}, ca2)).context?.delegation.length, 2);
    });
  });

  describe('depth', () => {
    it('accepts a chain at maxDelegationDepth and rejects one past it (ERR_DELEGATION_TOO_DEEP)', () => {
      verify(retrieval.cert, { maxDelegationDepth: 2 });
      expectRefusal(() => verify(retrieval.cert, { maxDelegationDepth: 1 }), ErrorCode.DELEGATION_TOO_DEEP);
      verify(planner.cert, { maxDelegationDepth: 0 });
    });

    it('rejects 9 links under the default bound of 8', () => {
      const chain = buildChain(
        ca,
        Array.from({ length: 10 }, (_, i) => ({
          name: `hop${i}`,
          scopes: ['s'],
          ttlSeconds: 3600 - i * 10,
        })),
      );
      verify(chain[8]!.cert);
      expectRefusal(() => verify(chain[9]!.cert), ErrorCode.DELEGATION_TOO_DEEP, /9 hops, at most 8/);
    });
  });

  describe('root session and principal', () => {
    it('rejects an undelegated context whose root session is not its session', () => {
      const key = generateSigningKeyPair();
      const ctx = baseContext({ sessionId: 's1', rootSessionId: 's0', scopes: ['x'] });
      expectRefusal(
        () => verify(issueSvid(ca, `spiffe://${TD}/a`, { key, context: ctx, ttlSeconds: 600 }).cert),
        ErrorCode.ROOT_CHANGED,
      );
    });

    it("rejects a delegated context whose root session is not the first hop's session", () => {
      expectRefusal(
        () => verify(reissued((c) => (c.rootSessionId = 'another-session'))),
        ErrorCode.ROOT_CHANGED,
      );
    });

    it("rejects a binding whose root session differs from the SVID's", () => {
      const link = linkToRetrieval(planner, {
        binding: { rootSessionId: 'other-root' },
      });
      const cert = reissued((c) => (c.delegation = [link]));
      expectRefusal(() => verify(cert), ErrorCode.ROOT_CHANGED, /root session "other-root"/);
    });

    it("rejects a binding whose principal differs from the SVID's", () => {
      const link = linkToRetrieval(planner, {
        binding: { principalId: 'mallory' },
      });
      expectRefusal(
        () => verify(reissued((c) => (c.delegation = [link]))),
        ErrorCode.ROOT_CHANGED,
        /mallory/,
      );
    });

    it('rejects an SVID whose own principal was swapped while the signed links name the original', () => {
      expectRefusal(
        () => verify(reissued((c) => (c.principal = { ...c.principal, id: 'mallory' }))),
        ErrorCode.ROOT_CHANGED,
      );
      expectRefusal(
        () => verify(reissued((c) => (c.principal = { ...c.principal, issuer: 'https://evil.example' }))),
        ErrorCode.ROOT_CHANGED,
      );
    });

    it('rejects an SVID whose principal provenance changed while the signed links name the original', () => {
      // The chain was rooted in a verified principal; a re-issued leaf cannot downgrade or relabel it.
      for (const provenance of ['asserted-by:spiffe://example.org/x', 'workload'] as const) {
        expectRefusal(
          () => verify(reissued((c) => (c.principal = { ...c.principal, provenance }))),
          ErrorCode.ROOT_CHANGED,
          /link 0 .*provenance "verified"\) differs .*provenance "[^"]+"\)/,
        );
      }
    });

    it("rejects a binding, genuinely signed by the parent, whose principal provenance differs from the SVID's", () => {
      // A chain rooted in an asserted principal cannot be relabelled as verified by the CA alone: the parent
      // signed the provenance it held.
      const asserted = { ...ALICE, provenance: 'asserted-by:spiffe://example.org/gateway' as const };
      const root = { ...planner, context: { ...planner.context, principal: asserted } };
      const link = linkToRetrieval(root);
      assert.equal(link.binding.principalProvenance, asserted.provenance);
      expectRefusal(
        () => verify(reissued((c) => (c.delegation = [link]))),
        ErrorCode.ROOT_CHANGED,
        /provenance "asserted-by:spiffe:\/\/example\.org\/gateway"\) differs/,
      );
      // Control: the same link under a leaf that carries the signed provenance verifies, and says so.
      const ok = verify(
        reissued((c) => {
          c.delegation = [link];
          c.principal = asserted;
        }),
      );
      assert.deepEqual(ok.context?.principal, asserted);
    });

    it('rejects a middle binding whose principal provenance differs, even with the leaf and first link consistent', () => {
      const link1 = linkToRetrieval(toolRunner, { binding: { principalProvenance: 'workload' } });
      expectRefusal(
        () => verify(reissued((c) => (c.delegation[1] = link1))),
        ErrorCode.ROOT_CHANGED,
        /delegation link 1 .*provenance "workload"/,
      );
    });

    it('accepts a one-link chain built directly from the root session (control)', () => {
      const link = linkToRetrieval(planner);
      verify(reissued((c) => (c.delegation = [link])));
    });
  });

  describe('link signatures and binding references', () => {
    it('rejects a link whose signature bytes were altered (ERR_DELEGATION_SIGNATURE_INVALID)', () => {
      const cert = reissued((c) => {
        const sig = c.delegation[1]!.signature;
        sig[sig.length - 1] = sig[sig.length - 1]! ^ 0x01;
      });
      expectRefusal(() => verify(cert), ErrorCode.DELEGATION_SIGNATURE_INVALID, /link 1/);
    });

    it('rejects a link signed by a key other than the one it carries', () => {
      const cert = reissued((c) => (c.delegation[0]!.publicKey = c.delegation[1]!.publicKey));
      expectRefusal(() => verify(cert), ErrorCode.DELEGATION_SIGNATURE_INVALID, /link 0/);
    });

    it('rejects a binding that names another parent certificate than its link (ERR_DELEGATION_LINK_INVALID)', () => {
      const link = linkToRetrieval(planner, {
        binding: { parentCertSha256: toolRunner.cert.sha256 },
      });
      expectRefusal(
        () => verify(reissued((c) => (c.delegation = [link]))),
        ErrorCode.DELEGATION_LINK_INVALID,
        /another parent certificate/,
      );
    });

    it('rejects a first link that refers to a previous link', () => {
      const link = linkToRetrieval(planner, {
        binding: { prevLinkSha256: new Uint8Array(randomBytes(32)) },
      });
      expectRefusal(
        () => verify(reissued((c) => (c.delegation = [link]))),
        ErrorCode.DELEGATION_LINK_INVALID,
      );
    });

    it('rejects a later link whose binding does not refer to the link before it', () => {
      const link1 = linkToRetrieval(toolRunner, {
        binding: { prevLinkSha256: new Uint8Array(randomBytes(32)) },
      });
      expectRefusal(
        () => verify(reissued((c) => (c.delegation[1] = link1))),
        ErrorCode.DELEGATION_LINK_INVALID,
        /does not refer to link 0/,
      );
    });
  });

  describe('the next hop is the child the binding names', () => {
    it('rejects a leaf whose SPIFFE ID is not the last binding.childId', () => {
      expectRefusal(
        () => verify(reissued(() => {}, ca, `spiffe://${TD}/someone-else`)),
        ErrorCode.DELEGATION_LINK_INVALID,
        /delegates to "spiffe:\/\/example\.org\/retrieval"/,
      );
    });

    it('rejects a middle link whose SPIFFE ID is not the previous binding.childId', () => {
      expectRefusal(
        () => verify(reissued((c) => (c.delegation[1]!.spiffeId = `spiffe://${TD}/impostor`))),
        ErrorCode.DELEGATION_LINK_INVALID,
      );
    });

    it('rejects a leaf holding another key than the binding names (childKeySha256)', () => {
      const otherKey = generateSigningKeyPair();
      const cert = issueSvid(ca, retrieval.id, {
        key: otherKey,
        context: retrieval.context,
        ttlSeconds: 600,
      }).cert;
      expectRefusal(() => verify(cert), ErrorCode.DELEGATION_LINK_INVALID, /another key/);
    });

    it('refuses a chain with a binding that names no child key (version 2), whatever key the leaf holds', () => {
      // A CA can still write the old form into a context; the verifier reads only version-3 bindings, in which
      // the key is required, so no hop can go without its parent naming its key.
      const root = parseTlv(encodeAgentContext(retrieval.context));
      for (const i of [0, 1]) {
        const b = at(root, CTX.delegation, i, LINK.binding);
        b.children![BINDING.version] = primitive(0x02, Uint8Array.of(2));
        b.children!.splice(BINDING.childKeySha256, 1);
      }
      const cert = issueX509Svid({
        spiffeId: retrieval.id,
        publicKey: generateSigningKeyPair().publicKey,
        issuer: asIssuer(ca),
        ttlSeconds: 600,
        agentContextDer: writeTlv(root),
      }).cert;
      expectRefusal(() => verify(cert), ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION, /binding\.version/);
    });

    it('rejects a middle link whose key is not the one the previous binding names', () => {
      expectRefusal(
        () => verify(reissued((c) => (c.delegation[1]!.publicKey = c.delegation[0]!.publicKey))),
        ErrorCode.DELEGATION_LINK_INVALID,
        /delegation link 0 .*another key than the one delegation link 1/,
      );
    });

    it('rejects a middle hop the CA re-created with a fresh key, although that hop signed its own binding', () => {
      // What a rogue CA can do without the tool-runner's key: mint it a new SVID and key, and sign link 1 with
      // that key. Link 1 is genuinely signed by the key it carries, so only the planner's signed childKeySha256
      // (link 0) tells the keys apart.
      const { fakeCert, link: link1 } = impostorLink(toolRunner, 1800);
      expectRefusal(
        () => verify(reissued((c) => (c.delegation[1] = link1))),
        ErrorCode.DELEGATION_LINK_INVALID,
        /delegation link 0 .*another key than the one delegation link 1/,
      );
      // The binding names the key, not the certificate: the real key under another certificate hash still
      // fails, because certSha256 is signed into link 1's binding and must match link 1.
      const wrongCert = reissued(
        (c) => (c.delegation[1] = { ...c.delegation[1]!, certSha256: fakeCert.sha256 }),
      );
      expectRefusal(() => verify(wrongCert), ErrorCode.DELEGATION_LINK_INVALID);
    });

    it('checks key continuity at every hop of a 3-link chain: each binding names the next hop key', () => {
      const chain = buildChain(ca, [
        { name: 'a', scopes: ['x'], ttlSeconds: 3600 },
        { name: 'b', scopes: ['x'], ttlSeconds: 3000 },
        { name: 'c', scopes: ['x'], ttlSeconds: 2400 },
        { name: 'd', scopes: ['x'], ttlSeconds: 1800 },
      ]);
      const leaf = chain[3]!;
      verify(leaf.cert);
      for (const i of [1, 2]) {
        const ctx = structuredClone(leaf.context);
        // Swap link i's key for a fresh one and re-sign its binding with it: link i's own signature verifies.
        const fresh = generateSigningKeyPair('ec-p256');
        const parent = { ...chain[i]!, key: fresh };
        const original = ctx.delegation[i]!;
        ctx.delegation[i] = delegate(
          parent,
          original.binding.childId,
          chain[i + 1]!.key.publicKey,
          ['x'],
          original.binding.notAfter,
          {
            binding: { prevLinkSha256: original.binding.prevLinkSha256 },
          },
        );
        expectRefusal(
          () => verify(issueSvid(ca, leaf.id, { key: leaf.key, context: ctx, ttlSeconds: 600 }).cert),
          ErrorCode.DELEGATION_LINK_INVALID,
          new RegExp(`delegation link ${i - 1} .*another key than the one delegation link ${i}`),
        );
      }
      // The last binding names the leaf's key: a leaf for a fresh key is refused.
      expectRefusal(
        () =>
          verify(
            issueSvid(ca, leaf.id, {
              key: generateSigningKeyPair('ec-p256'),
              context: leaf.context,
              ttlSeconds: 600,
            }).cert,
          ),
        ErrorCode.DELEGATION_LINK_INVALID,
        /delegation link 2 .*another key than the one the leaf/,
      );
    });

    it("trust boundary: the first link's key is vouched for by the CA alone (docs/design/agent-context.md, offline provability)", () => {
      // Nothing the verifier sees ties link 0's key to the planner's SPIFFE ID: certSha256 names a certificate
      // the verifier never gets. So a CA-made link 0 signed by a key the planner never held verifies; an
      // investigator matches certSha256 against the issuance audit trail. This pins what docs/design/agent-context.md and the threat model claim.
      const { fakeCert, link } = impostorLink(planner, 3600);
      const ok = verify(reissued((c) => (c.delegation = [link])));
      const named = Buffer.from(ok.context!.delegation[0]!.certSha256);
      assert.ok(named.equals(Buffer.from(fakeCert.sha256)));
      assert.ok(!named.equals(Buffer.from(planner.cert.sha256)));
    });
  });

  describe('scopes only narrow', () => {
    it("rejects a binding granting scopes beyond the parent's own (ERR_SCOPE_ESCALATION)", () => {
      const link = delegate(
        planner,
        retrieval.id,
        retrieval.key.publicKey,
        ['docs:read', 'admin'],
        retrieval.cert.notAfter,
      );
      expectRefusal(
        () => verify(reissued((c) => (c.delegation = [link]))),
        ErrorCode.SCOPE_ESCALATION,
        /"admin" beyond the parent's own scopes/,
      );
    });

    it("rejects a leaf whose scopes exceed the last binding's", () => {
      expectRefusal(
        () => verify(reissued((c) => c.scopes.push('docs:write'))),
        ErrorCode.SCOPE_ESCALATION,
        /docs:write/,
      );
    });

    it('rejects a middle hop whose own scopes exceed the binding that delegated to it', () => {
      expectRefusal(
        () => verify(reissued((c) => c.delegation[1]!.scopes.push('admin'))),
        ErrorCode.SCOPE_ESCALATION,
        /delegation link 1/,
      );
    });

    it('accepts a leaf with fewer scopes than its binding', () => {
      verify(reissued((c) => (c.scopes = [])));
    });
  });

  describe('expiry only shrinks', () => {
    it("rejects a binding that outlives the parent's SVID (ERR_LIFETIME_ESCALATION)", () => {
      const late = new Date(planner.cert.notAfter.getTime() + 3600_000);
      const link = delegate(planner, retrieval.id, retrieval.key.publicKey, ['docs:read'], late);
      expectRefusal(() => verify(reissued((c) => (c.delegation = [link]))), ErrorCode.LIFETIME_ESCALATION);
    });

    it('rejects a leaf that outlives its binding', () => {
      const cert = issueSvid(ca, retrieval.id, {
        key: retrieval.key,
        context: retrieval.context,
        ttlSeconds: 3 * 3600,
      }).cert;
      expectRefusal(() => verify(cert), ErrorCode.LIFETIME_ESCALATION, /the leaf/);
    });

    it('rejects a middle hop whose SVID outlives the binding that delegated to it', () => {
      expectRefusal(
        () =>
          verify(
            reissued(
              (c) => (c.delegation[1]!.notAfter = seconds(c.delegation[1]!.notAfter.getTime() + 3600_000)),
            ),
          ),
        ErrorCode.LIFETIME_ESCALATION,
      );
    });
  });

  describe('tampering, even when the leaf is re-signed by another CA key in the bundle', () => {
    it('an edited link: parent scopes widened (breaks the next binding reference)', () => {
      expectRefusal(
        () => verify(reissued((c) => c.delegation[0]!.scopes.push('admin'), ca2)),
        ErrorCode.DELEGATION_LINK_INVALID,
      );
    });

    it('an edited link: binding scopes widened (breaks its signature)', () => {
      expectRefusal(
        () => verify(reissued((c) => c.delegation[1]!.binding.scopes.push('docs:write'), ca2)),
        ErrorCode.DELEGATION_SIGNATURE_INVALID,
      );
    });

    it('an edited link: binding expiry extended (breaks its signature)', () => {
      const cert = reissued((c) => {
        const b = c.delegation[0]!.binding;
        b.notAfter = seconds(b.notAfter.getTime() + 60_000);
      }, ca2);
      expectRefusal(() => verify(cert), ErrorCode.DELEGATION_SIGNATURE_INVALID);
    });

    it('reordered links', () => {
      expectRefusal(() => verify(reissued((c) => c.delegation.reverse(), ca2)), ErrorCode.ROOT_CHANGED);
      // Even with the root session rewritten to match the new first link, the hash chain breaks.
      const cert = reissued((c) => {
        c.delegation.reverse();
        c.rootSessionId = c.delegation[0]!.sessionId;
      }, ca2);
      expectRefusal(() => verify(cert), ErrorCode.DELEGATION_LINK_INVALID);
    });

    it('the first link removed', () => {
      const cert = reissued((c) => {
        c.delegation.shift();
        c.rootSessionId = c.delegation[0]!.sessionId;
      }, ca2);
      expectRefusal(() => verify(cert), ErrorCode.DELEGATION_LINK_INVALID);
    });

    it('the last link removed', () => {
      expectRefusal(
        () => verify(reissued((c) => c.delegation.pop(), ca2)),
        ErrorCode.DELEGATION_LINK_INVALID,
      );
    });

    it('all links removed (claiming to be a root session)', () => {
      const cert = reissued((c) => {
        c.delegation = [];
        c.rootSessionId = c.sessionId;
      }, ca2);
      // Without links the context makes no delegation claim: the SVID is then an undelegated session, and
      // nothing offline can tell that a chain existed. It does not inherit any parent's authority, though.
      const { context } = verify(cert);
      assert.equal(context?.delegation.length, 0);
    });

    it('a link spliced in from another chain with the same identities', () => {
      const other = plannerChain(ca);
      const cert = reissued((c) => (c.delegation[0] = other[2]!.context.delegation[0]!), ca2);
      expectRefusal(() => verify(cert), ErrorCode.DELEGATION_LINK_INVALID);
    });
  });

  describe('malformed extension', () => {
    const withContextBytes = (value: Uint8Array) => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(`spiffe://${TD}/w`, root, {
        extra: [{ oid: DEFAULT_AGENT_CONTEXT_OID, critical: false, value }],
      });
      const b = new X509Bundle(TrustDomain.parse(TD), { x509Authorities: [root.cert] });
      return () => verifyX509Svid([leaf.cert], b, { at: NOW, cache: null });
    };

    it('rejects an SVID whose agent-context extension is not valid DER (ERR_MALFORMED_AGENT_CONTEXT)', () => {
      expectRefusal(
        withContextBytes(new Uint8Array([0x30, 0x05, 0x02, 0x01])),
        ErrorCode.MALFORMED_AGENT_CONTEXT,
      );
      expectRefusal(withContextBytes(new Uint8Array([0x04, 0x01, 0x00])), ErrorCode.MALFORMED_AGENT_CONTEXT);
    });

    it('rejects an agent context of an unknown version', () => {
      expectRefusal(
        withContextBytes(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05])),
        ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
      );
    });

    it('rejects an agent-context extension marked critical (not a processed critical extension)', () => {
      const root = makeRoot(TD);
      const leaf = makeLeaf(`spiffe://${TD}/w`, root, {
        extra: [{ oid: DEFAULT_AGENT_CONTEXT_OID, critical: true, value: new Uint8Array([0x30, 0x00]) }],
      });
      const b = new X509Bundle(TrustDomain.parse(TD), { x509Authorities: [root.cert] });
      expectRefusal(
        () => verifyX509Svid([leaf.cert], b, { at: NOW, cache: null }),
        ErrorCode.UNKNOWN_CRITICAL_EXTENSION,
        /1\.3\.6\.1\.4\.1\.262144\.1\.1/,
      );
    });
  });

  describe('revocation along the chain', () => {
    const cases = [
      ['its own session', () => retrieval.context.sessionId],
      ['the parent session', () => toolRunner.context.sessionId],
      ['the root session', () => planner.context.sessionId],
    ] as const;
    for (const [what, session] of cases) {
      it(`rejects the leaf when ${what} is revoked`, () => {
        const revocation = new StaticRevocationList().revokeSession(session(), 'task ended');
        expectRefusal(() => verify(retrieval.cert, { revocation }), ErrorCode.REVOKED, /task ended/);
      });
    }

    it('accepts the leaf when an unrelated session is revoked, and a parent when only its child is revoked', () => {
      const revocation = new StaticRevocationList()
        .revokeSession('unrelated')
        .revokeSession(retrieval.context.sessionId);
      verify(toolRunner.cert, { revocation });
      verify(planner.cert, { revocation });
    });
  });
});
