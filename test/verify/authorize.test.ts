import assert from 'node:assert/strict';
import { ErrorCode } from '../../src/errors';
import { matchMemberOf, SpiffeId, TrustDomain } from '../../src/spiffe';
import {
  allOf,
  authorizeAny,
  authorizeId,
  authorizeMatcher,
  authorizeMemberOf,
  authorizeOneOf,
  maxDelegationDepth,
  requirePrincipal,
  requireScopes,
  VerifyX509SvidResult,
} from '../../src/verify';
import type { AgentContext, DelegationLink } from '../../src/x509/agent-context/types';
import { expectRefusal } from '../support/refusal';

/** Authorizers only read `id` and `context`; a hand-made result keeps these tests about the decisions. */
function svid(id: string, context?: Partial<AgentContext>): VerifyX509SvidResult {
  const full: AgentContext | undefined =
    context === undefined
      ? undefined
      : {
          version: 1,
          agentId: 'agent',
          sessionId: 's',
          rootSessionId: 's',
          principal: { id: 'alice', issuer: 'https://idp.example.org', provenance: 'verified' },
          intent: '',
          scopes: [],
          policyVersion: 'v1',
          provenance: {
            method: 'join_token',
            evidenceSha256: new Uint8Array(32),
            issuer: 'spiffe://example.org/s',
            issuedAt: new Date(),
          },
          delegation: [],
          ...context,
        };
  return { id: SpiffeId.parse(id), ...(full !== undefined ? { context: full } : {}), chain: [] };
}

const A = 'spiffe://example.org/a';
const B = 'spiffe://example.org/b';
const FOREIGN = 'spiffe://other.org/a';
const denied = (fn: () => unknown, message?: RegExp) => expectRefusal(fn, ErrorCode.UNAUTHORIZED, message);

describe('authorizers', () => {
  it('authorizeAny allows every verified SVID', () => {
    authorizeAny()(svid(A));
    authorizeAny()(svid(FOREIGN));
  });

  it('authorizeId allows exactly that ID', () => {
    authorizeId(A)(svid(A));
    authorizeId(SpiffeId.parse(A))(svid(A));
    denied(
      () => authorizeId(A)(svid(B)),
      /spiffe:\/\/example\.org\/b is not SPIFFE ID spiffe:\/\/example\.org\/a/,
    );
  });

  it('authorizeId parses its argument when built, not when it runs', () => {
    expectRefusal(() => authorizeId('not a spiffe id'), ErrorCode.INVALID_SPIFFE_ID);
  });

  it('authorizeOneOf allows the listed IDs only; an empty list allows nobody', () => {
    authorizeOneOf(A, B)(svid(B));
    denied(() => authorizeOneOf(A)(svid(B)));
    denied(() => authorizeOneOf()(svid(A)), /\(none\)/);
  });

  it('authorizeMemberOf allows IDs of that trust domain only', () => {
    authorizeMemberOf('example.org')(svid(A));
    authorizeMemberOf(TrustDomain.parse('example.org'))(svid(B));
    denied(() => authorizeMemberOf('example.org')(svid(FOREIGN)), /trust domain example\.org/);
  });

  it('authorizeMatcher delegates to a matcher', () => {
    const a = authorizeMatcher(matchMemberOf(TrustDomain.parse('other.org')), 'a partner workload');
    a(svid(FOREIGN));
    denied(() => a(svid(A)), /is not a partner workload/);
  });

  describe('context predicates', () => {
    it('requireScopes allows a context holding every scope, refuses a missing one or no context', () => {
      const a = requireScopes('docs:read', 'tools:run');
      a(svid(A, { scopes: ['tools:run', 'docs:read', 'x'] }));
      denied(() => a(svid(A, { scopes: ['docs:read'] })), /lacks scope\(s\) "tools:run"/);
      denied(() => a(svid(A)), /no agent context/);
      assert.throws(() => requireScopes(), TypeError);
    });

    it('requirePrincipal matches id, issuer and provenance as given', () => {
      requirePrincipal({ id: 'alice' })(svid(A, {}));
      requirePrincipal({ issuer: 'https://idp.example.org', provenance: 'verified' })(svid(A, {}));
      denied(() => requirePrincipal({ id: 'bob' })(svid(A, {})), /id is "alice", "bob" is required/);
      denied(
        () =>
          requirePrincipal({ provenance: 'verified' })(
            svid(A, { principal: { id: 'alice', issuer: A, provenance: `asserted-by:${A}` } }),
          ),
        /provenance/,
      );
      denied(() => requirePrincipal({ id: 'alice' })(svid(A)), /no agent context/);
      assert.throws(() => requirePrincipal({}), TypeError);
    });

    it('maxDelegationDepth bounds the number of hops; no context counts as depth 0', () => {
      const link = {} as DelegationLink;
      maxDelegationDepth(1)(svid(A, { delegation: [link] }));
      maxDelegationDepth(0)(svid(A));
      denied(
        () => maxDelegationDepth(1)(svid(A, { delegation: [link, link] })),
        /2 delegation hops deep, at most 1/,
      );
      assert.throws(() => maxDelegationDepth(-1), TypeError);
    });
  });

  it('allOf allows only when every authorizer does, and reports the first refusal', () => {
    const a = allOf(authorizeMemberOf('example.org'), requireScopes('docs:read'));
    a(svid(A, { scopes: ['docs:read'] }));
    denied(() => a(svid(FOREIGN, { scopes: ['docs:read'] })), /trust domain/);
    denied(() => a(svid(A, { scopes: [] })), /lacks scope/);
    assert.throws(() => allOf(), TypeError);
  });
});
