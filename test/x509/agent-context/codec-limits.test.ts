import assert from 'node:assert/strict';
import { ErrorCode } from '../../../src/errors';
import {
  AGENT_CONTEXT_LIMITS as LIMITS,
  type AgentContext,
  decodeAgentContext,
  encodeAgentContext,
} from '../../../src/x509/agent-context';
import {
  bytes,
  contextWithLinks,
  expectAgentContextError,
  rawEncode,
  sampleBinding,
  sampleContext,
  sampleLink,
} from './fixtures';

const MALFORMED = ErrorCode.MALFORMED_AGENT_CONTEXT;
const TOO_LARGE = ErrorCode.AGENT_CONTEXT_TOO_LARGE;

function scopes(n: number, prefix = 's'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}

/** A string of exactly n UTF-8 bytes, mostly two-byte characters, so byte and character counts differ. */
function utf8OfBytes(n: number): string {
  return 'é'.repeat(Math.floor(n / 2)) + 'a'.repeat(n % 2);
}

function withLink(link: Partial<Parameters<typeof sampleLink>[0]>): AgentContext {
  return sampleContext({ delegation: [sampleLink(link)] });
}

function withBinding(binding: Parameters<typeof sampleBinding>[0]): AgentContext {
  return withLink({ binding: sampleBinding(binding) });
}

function spiffeIdOfBytes(n: number): string {
  const prefix = 'spiffe://example.org/';
  return prefix + 'a'.repeat(n - prefix.length);
}

interface Case {
  name: string;
  /** A valid value at the limit. */
  inside: AgentContext;
  /** The same value one step past it, and what both encoder and decoder must say. */
  outside: AgentContext;
  code: string;
  field: string;
}

const cases: Case[] = [
  {
    name: 'delegation depth',
    inside: contextWithLinks(LIMITS.maxDelegationDepth),
    outside: contextWithLinks(LIMITS.maxDelegationDepth + 1),
    code: TOO_LARGE,
    field: 'delegation',
  },
  {
    name: 'scope count (context)',
    inside: sampleContext({ scopes: scopes(LIMITS.maxScopes) }),
    outside: sampleContext({ scopes: scopes(LIMITS.maxScopes + 1) }),
    code: TOO_LARGE,
    field: 'scopes',
  },
  {
    name: 'scope count (link)',
    inside: withLink({ scopes: scopes(LIMITS.maxScopes) }),
    outside: withLink({ scopes: scopes(LIMITS.maxScopes + 1) }),
    code: TOO_LARGE,
    field: 'delegation[0].scopes',
  },
  {
    name: 'scope count (binding)',
    inside: withBinding({ scopes: scopes(LIMITS.maxScopes) }),
    outside: withBinding({ scopes: scopes(LIMITS.maxScopes + 1) }),
    code: TOO_LARGE,
    field: 'delegation[0].binding.scopes',
  },
  {
    name: 'scope length',
    inside: sampleContext({ scopes: ['x', 'a'.repeat(LIMITS.maxScopeLength)] }),
    outside: sampleContext({ scopes: ['x', 'a'.repeat(LIMITS.maxScopeLength + 1)] }),
    code: TOO_LARGE,
    field: 'scopes[1]',
  },
  {
    name: 'scope length (minimum)',
    inside: sampleContext({ scopes: ['a'] }),
    outside: sampleContext({ scopes: [''] }),
    code: MALFORMED,
    field: 'scopes[0]',
  },
  {
    name: 'scope charset (printable ASCII edges vs space)',
    inside: sampleContext({ scopes: ['!', '~', 'a:b/c.d-e_f'] }),
    outside: sampleContext({ scopes: ['!', 'a b'] }),
    code: MALFORMED,
    field: 'scopes[1]',
  },
  {
    name: 'scope charset (DEL)',
    inside: sampleContext({ scopes: ['~'] }),
    outside: sampleContext({ scopes: ['a\x7f'] }),
    code: MALFORMED,
    field: 'scopes[0]',
  },
  {
    name: 'scope charset (non-ASCII)',
    inside: sampleContext({ scopes: ['cafe'] }),
    outside: sampleContext({ scopes: ['café'] }),
    code: MALFORMED,
    field: 'scopes[0]',
  },
  {
    name: 'scope duplicates',
    inside: sampleContext({ scopes: ['a', 'A'] }),
    outside: withBinding({ scopes: ['a', 'b', 'a'] }),
    code: MALFORMED,
    field: 'delegation[0].binding.scopes[2]',
  },
  {
    name: 'agentId length (UTF-8 bytes)',
    inside: sampleContext({ agentId: utf8OfBytes(LIMITS.maxIdLength) }),
    outside: sampleContext({ agentId: utf8OfBytes(LIMITS.maxIdLength + 1) }),
    code: TOO_LARGE,
    field: 'agentId',
  },
  {
    name: 'principal.id length',
    inside: sampleContext({
      principal: { id: utf8OfBytes(LIMITS.maxIdLength), issuer: 'i', provenance: 'workload' },
    }),
    outside: sampleContext({
      principal: { id: utf8OfBytes(LIMITS.maxIdLength + 1), issuer: 'i', provenance: 'workload' },
    }),
    code: TOO_LARGE,
    field: 'principal.id',
  },
  {
    name: 'SPIFFE ID length (link)',
    inside: withLink({ spiffeId: spiffeIdOfBytes(LIMITS.maxIdLength) }),
    outside: withLink({ spiffeId: spiffeIdOfBytes(LIMITS.maxIdLength + 1) }),
    code: TOO_LARGE,
    field: 'delegation[0].spiffeId',
  },
  {
    name: 'sessionId length',
    inside: sampleContext({ sessionId: utf8OfBytes(LIMITS.maxShortStringLength) }),
    outside: sampleContext({ sessionId: utf8OfBytes(LIMITS.maxShortStringLength + 1) }),
    code: TOO_LARGE,
    field: 'sessionId',
  },
  {
    name: 'rootSessionId length (binding)',
    inside: withBinding({ rootSessionId: 'r'.repeat(LIMITS.maxShortStringLength) }),
    outside: withBinding({ rootSessionId: 'r'.repeat(LIMITS.maxShortStringLength + 1) }),
    code: TOO_LARGE,
    field: 'delegation[0].binding.rootSessionId',
  },
  {
    name: 'policyVersion length',
    inside: sampleContext({ policyVersion: 'p'.repeat(LIMITS.maxShortStringLength) }),
    outside: sampleContext({ policyVersion: 'p'.repeat(LIMITS.maxShortStringLength + 1) }),
    code: TOO_LARGE,
    field: 'policyVersion',
  },
  {
    name: 'intent length',
    inside: sampleContext({ intent: utf8OfBytes(LIMITS.maxIntentLength) }),
    outside: sampleContext({ intent: utf8OfBytes(LIMITS.maxIntentLength + 1) }),
    code: TOO_LARGE,
    field: 'intent',
  },
  {
    name: 'required strings are not empty',
    inside: sampleContext({ sessionId: 's' }),
    outside: sampleContext({ sessionId: '' }),
    code: MALFORMED,
    field: 'sessionId',
  },
  {
    name: 'public key size',
    inside: withLink({ publicKey: bytes(LIMITS.maxPublicKeyBytes) }),
    outside: withLink({ publicKey: bytes(LIMITS.maxPublicKeyBytes + 1) }),
    code: TOO_LARGE,
    field: 'delegation[0].publicKey',
  },
  {
    name: 'public key present',
    inside: withLink({ publicKey: bytes(1) }),
    outside: withLink({ publicKey: bytes(0) }),
    code: MALFORMED,
    field: 'delegation[0].publicKey',
  },
  {
    name: 'signature size',
    inside: withLink({ signature: bytes(LIMITS.maxSignatureBytes) }),
    outside: withLink({ signature: bytes(LIMITS.maxSignatureBytes + 1) }),
    code: TOO_LARGE,
    field: 'delegation[0].signature',
  },
  {
    name: 'nonce maximum',
    inside: withBinding({ nonce: bytes(LIMITS.maxNonceBytes) }),
    outside: withBinding({ nonce: bytes(LIMITS.maxNonceBytes + 1) }),
    code: TOO_LARGE,
    field: 'delegation[0].binding.nonce',
  },
  {
    name: 'nonce minimum',
    inside: withBinding({ nonce: bytes(LIMITS.minNonceBytes) }),
    outside: withBinding({ nonce: bytes(LIMITS.minNonceBytes - 1) }),
    code: MALFORMED,
    field: 'delegation[0].binding.nonce',
  },
  ...(
    [
      [
        'evidenceSha256',
        (b: Uint8Array) =>
          sampleContext({ provenance: { ...sampleContext().provenance, evidenceSha256: b } }),
      ],
      ['delegation[0].certSha256', (b: Uint8Array) => withLink({ certSha256: b })],
      ['delegation[0].binding.parentCertSha256', (b: Uint8Array) => withBinding({ parentCertSha256: b })],
      ['delegation[0].binding.childKeySha256', (b: Uint8Array) => withBinding({ childKeySha256: b })],
    ] as const
  ).flatMap(([field, make]) =>
    [31, 33].map((n) => ({
      name: `${field} is 32 bytes, not ${n}`,
      inside: make(bytes(32)),
      outside: make(bytes(n)),
      code: MALFORMED,
      field: field === 'evidenceSha256' ? 'provenance.evidenceSha256' : field,
    })),
  ),
  {
    name: 'prevLinkSha256 is empty or 32 bytes',
    inside: withBinding({ prevLinkSha256: bytes(32) }),
    outside: withBinding({ prevLinkSha256: bytes(16) }),
    code: MALFORMED,
    field: 'delegation[0].binding.prevLinkSha256',
  },
  {
    name: 'prevLinkSha256 is not longer than 32 bytes',
    inside: withBinding({ prevLinkSha256: new Uint8Array(0) }),
    outside: withBinding({ prevLinkSha256: bytes(33) }),
    code: TOO_LARGE,
    field: 'delegation[0].binding.prevLinkSha256',
  },
  {
    name: 'latest time',
    inside: withLink({ notAfter: new Date(Date.UTC(9999, 11, 31, 23, 59, 59)) }),
    outside: withLink({ notAfter: new Date(Date.UTC(10000, 0, 1)) }),
    code: MALFORMED,
    field: 'delegation[0].notAfter',
  },
  {
    name: 'earliest time',
    inside: withBinding({ redeemBy: new Date(0) }),
    outside: withBinding({ redeemBy: new Date(-1000) }),
    code: MALFORMED,
    field: 'delegation[0].binding.redeemBy',
  },
  {
    name: 'principal provenance',
    inside: sampleContext({
      principal: {
        id: 'bob',
        issuer: 'spiffe://example.org/hr',
        provenance: 'asserted-by:spiffe://example.org/hr',
      },
    }),
    outside: sampleContext({
      principal: { id: 'bob', issuer: 'spiffe://example.org/hr', provenance: 'asserted-by:hr' as 'verified' },
    }),
    code: MALFORMED,
    field: 'principal.provenance',
  },
];

describe('agent-context codec: limits, just inside and just outside', () => {
  for (const c of cases) {
    it(`${c.name}: accepted at the limit, refused past it by encoder and decoder`, () => {
      assert.deepStrictEqual(decodeAgentContext(encodeAgentContext(c.inside)), c.inside);
      expectAgentContextError(() => encodeAgentContext(c.outside), c.code, c.field);
      expectAgentContextError(() => decodeAgentContext(rawEncode(c.outside)), c.code, c.field);
    });
  }
});

describe('agent-context codec: total size', () => {
  /** Smallest n in [lo, hi] with size(n) >= target, for a size that grows with n. */
  function search(lo: number, hi: number, size: (n: number) => number, target: number): number {
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (size(mid) >= target) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /**
   * A valid-looking context whose DER is exactly `size` bytes: links are added while they fit, then context
   * scopes (about 100 bytes each) and finally the intent (one byte at a time) fill the rest.
   */
  function contextOfSize(size: number): AgentContext {
    const link = (i: number) =>
      sampleLink({ agentId: `agent-${i}`, scopes: scopes(LIMITS.maxScopes, 'a-rather-long-scope-name-') });
    const base = sampleContext({ intent: '', scopes: [] });
    while (base.delegation.length < LIMITS.maxDelegationDepth) {
      const more = { ...base, delegation: [...base.delegation, link(base.delegation.length)] };
      if (rawEncode(more).length > size - 300) break;
      base.delegation = more.delegation;
    }
    const withScopes = (n: number) => ({ ...base, scopes: scopes(n, 'x'.repeat(100)) });
    // The most scopes that fit: the gap left is less than one scope, which the intent closes.
    const s = search(0, LIMITS.maxScopes + 1, (n) => rawEncode(withScopes(n)).length, size + 1) - 1;
    const withIntent = (n: number) => ({ ...withScopes(Math.max(s, 0)), intent: 'i'.repeat(n) });
    const exact = withIntent(search(0, LIMITS.maxIntentLength, (n) => rawEncode(withIntent(n)).length, size));
    assert.equal(rawEncode(exact).length, size, 'the size search found an exact fit');
    return exact;
  }

  let atLimit: AgentContext;
  let overLimit: AgentContext;
  before(() => {
    atLimit = contextOfSize(LIMITS.maxEncodedBytes);
    overLimit = contextOfSize(LIMITS.maxEncodedBytes + 1);
  });

  it('encodes and decodes a context of exactly maxEncodedBytes', () => {
    const der = encodeAgentContext(atLimit);
    assert.equal(der.length, LIMITS.maxEncodedBytes);
    assert.deepStrictEqual(decodeAgentContext(der), atLimit);
  });

  it('decodes the context with the most ASN.1 elements the limits allow (the parser budget fits it)', () => {
    const ctx = contextWithLinks(LIMITS.maxDelegationDepth);
    ctx.scopes = scopes(LIMITS.maxScopes);
    for (const link of ctx.delegation) {
      link.scopes = scopes(LIMITS.maxScopes);
      link.binding.scopes = scopes(LIMITS.maxScopes);
    }
    assert.deepStrictEqual(decodeAgentContext(encodeAgentContext(ctx)), ctx);
  });

  it('refuses to encode a valid-looking context one byte over', () => {
    expectAgentContextError(() => encodeAgentContext(overLimit), TOO_LARGE);
  });

  it('refuses input one byte over before parsing it', () => {
    expectAgentContextError(() => decodeAgentContext(rawEncode(overLimit)), TOO_LARGE);
    // Not even a SEQUENCE: the size check comes first, so the parser never sees it.
    expectAgentContextError(() => decodeAgentContext(new Uint8Array(LIMITS.maxEncodedBytes + 1)), TOO_LARGE);
  });
});

describe('agent-context codec: text and time syntax', () => {
  const refused: [string, () => AgentContext, string][] = [
    ['a newline in the intent', () => sampleContext({ intent: 'line one\nforged line' }), 'intent'],
    ['a NUL in an id', () => sampleContext({ agentId: 'agent\u0000' }), 'agentId'],
    ['a C1 control', () => sampleContext({ policyVersion: 'p\u0085' }), 'policyVersion'],
    ['a bidi override', () => sampleContext({ intent: 'pay \u202eevil' }), 'intent'],
    [
      'an empty principal issuer',
      () => sampleContext({ principal: { ...sampleContext().principal, issuer: '' } }),
      'principal.issuer',
    ],
    [
      'a provenance that is not a known word',
      () =>
        sampleContext({ principal: { ...sampleContext().principal, provenance: 'trusted' as 'verified' } }),
      'principal.provenance',
    ],
    [
      'an issuer that is not a SPIFFE ID',
      () => sampleContext({ provenance: { ...sampleContext().provenance, issuer: 'https://lanyard' } }),
      'provenance.issuer',
    ],
    [
      'a SPIFFE ID with an upper-case trust domain',
      () => withLink({ spiffeId: 'spiffe://Example.org/a' }),
      'delegation[0].spiffeId',
    ],
    [
      'a SPIFFE ID with a dot-dot segment',
      () => withBinding({ childId: 'spiffe://example.org/a/../b' }),
      'delegation[0].binding.childId',
    ],
    [
      'a SPIFFE ID with a trailing slash',
      () => withBinding({ childId: 'spiffe://example.org/a/' }),
      'delegation[0].binding.childId',
    ],
    [
      'a time with milliseconds',
      () => withLink({ notAfter: new Date('2025-06-01T12:00:00.500Z') }),
      'delegation[0].notAfter',
    ],
  ];
  for (const [name, make, field] of refused) {
    it(`refuses ${name} (encoder and decoder)`, () => {
      expectAgentContextError(() => encodeAgentContext(make()), MALFORMED, field);
      expectAgentContextError(() => decodeAgentContext(rawEncode(make())), MALFORMED, field);
    });
  }

  it('refuses an unpaired surrogate and an invalid Date at encoding', () => {
    expectAgentContextError(
      () => encodeAgentContext(sampleContext({ intent: 'x\ud800y' })),
      MALFORMED,
      'intent',
    );
    expectAgentContextError(
      () => encodeAgentContext(withLink({ notAfter: new Date(NaN) })),
      MALFORMED,
      'notAfter',
    );
  });

  it('refuses values of the wrong type, as JSON input would carry them', () => {
    const bad = (patch: Record<string, unknown>): AgentContext =>
      ({ ...sampleContext(), ...patch }) as AgentContext;
    expectAgentContextError(() => encodeAgentContext(bad({ agentId: 42 })), MALFORMED, 'agentId');
    expectAgentContextError(() => encodeAgentContext(bad({ scopes: 'a b' })), MALFORMED, 'scopes');
    expectAgentContextError(() => encodeAgentContext(bad({ principal: null })), MALFORMED, 'principal');
    expectAgentContextError(
      () =>
        encodeAgentContext(
          bad({ provenance: { ...sampleContext().provenance, issuedAt: '2025-01-01T00:00:00Z' } }),
        ),
      MALFORMED,
      'provenance.issuedAt',
    );
    expectAgentContextError(
      () =>
        encodeAgentContext(
          bad({ provenance: { ...sampleContext().provenance, evidenceSha256: 'ab'.repeat(32) } }),
        ),
      MALFORMED,
      'provenance.evidenceSha256',
    );
    expectAgentContextError(
      () => encodeAgentContext(bad({ delegation: [null] })),
      MALFORMED,
      'delegation[0]',
    );
  });

  it('refuses to encode any version other than 1 and 2', () => {
    for (const version of [0, 3, '1', undefined]) {
      expectAgentContextError(
        () => encodeAgentContext({ ...sampleContext(), version } as unknown as AgentContext),
        ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
        'version',
      );
    }
  });

  it('refuses a version that does not match whether a link carries a parentChain', () => {
    const plain = contextWithLinks(1);
    expectAgentContextError(
      () => encodeAgentContext({ ...plain, version: 2 }),
      MALFORMED,
      'no link carries a parentChain',
    );
    const chained = contextWithLinks(1);
    chained.delegation[0]!.parentChain = [bytes(300)];
    expectAgentContextError(() => encodeAgentContext(chained), MALFORMED, 'the version must be 2');
    chained.version = 2;
    assert.deepEqual(decodeAgentContext(encodeAgentContext(chained)), chained);
  });

  it('bounds a parentChain: one to four certificates of at most 16 KiB each', () => {
    const ctx = { ...contextWithLinks(1), version: 2 as const };
    ctx.delegation[0]!.parentChain = [];
    expectAgentContextError(() => encodeAgentContext(ctx), MALFORMED, 'parentChain');
    ctx.delegation[0]!.parentChain = [1, 2, 3, 4, 5].map(() => bytes(10));
    expectAgentContextError(() => encodeAgentContext(ctx), ErrorCode.AGENT_CONTEXT_TOO_LARGE, 'parentChain');
    ctx.delegation[0]!.parentChain = [new Uint8Array(0)];
    expectAgentContextError(() => encodeAgentContext(ctx), MALFORMED, 'parentChain[0]');
  });
});
