/** fast-check generators of valid agent-context values, written from the rules in schema.ts. */
import fc from 'fast-check';
import type {
  AgentContext,
  DelegationBinding,
  DelegationLink,
  PrincipalProvenance,
} from '../../../src/x509/agent-context';

// The rule, restated independently of the implementation: no control or bidi formatting characters.
const FORBIDDEN = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** Any Unicode text (astral characters included) with forbidden characters replaced. */
export function text(minLength: number, maxLength: number): fc.Arbitrary<string> {
  return fc.string({ unit: 'binary', minLength, maxLength }).map((s) => s.replace(FORBIDDEN, '_'));
}

const scopeChar = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
export const scope = fc.string({ unit: scopeChar, minLength: 1, maxLength: 128 });
export const scopes = fc.uniqueArray(scope, { maxLength: 6 });

const lower = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_'.split(''));
const segmentChar = fc.constantFrom(
  ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_'.split(''),
);
const segment = fc
  .string({ unit: segmentChar, minLength: 1, maxLength: 12 })
  .filter((s) => s !== '.' && s !== '..');
export const spiffeId = fc
  .tuple(fc.string({ unit: lower, minLength: 1, maxLength: 20 }), fc.array(segment, { maxLength: 4 }))
  .map(([td, path]) => `spiffe://${td}${path.map((s) => `/${s}`).join('')}`);

const provenanceWord: fc.Arbitrary<PrincipalProvenance> = fc.oneof(
  fc.constant('verified' as const),
  fc.constant('workload' as const),
  spiffeId.map((id): PrincipalProvenance => `asserted-by:${id}`),
);

const MAX_SECONDS = Date.UTC(9999, 11, 31, 23, 59, 59) / 1000;
export const time = fc.integer({ min: 0, max: MAX_SECONDS }).map((s) => new Date(s * 1000));
export const sha256 = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** Plain prototypes, as decoded values have. */
const plain = { noNullPrototype: true } as const;

export const binding: fc.Arbitrary<DelegationBinding> = fc.record(
  {
    parentCertSha256: sha256,
    childId: spiffeId,
    childKeySha256: sha256,
    scopes,
    notAfter: time,
    redeemBy: time,
    nonce: fc.uint8Array({ minLength: 16, maxLength: 64 }),
    rootSessionId: text(1, 20),
    principalId: text(1, 20),
    principalIssuer: text(1, 20),
    principalProvenance: provenanceWord,
    prevLinkSha256: fc.oneof(fc.constant(new Uint8Array(0)), sha256),
  },
  plain,
);

// Every field of a link but its parentChain, which is there on a link appended across a trust-domain boundary.
const plainKeys: (keyof DelegationLink)[] = [
  'spiffeId',
  'agentId',
  'sessionId',
  'scopes',
  'notAfter',
  'certSha256',
  'publicKey',
  'binding',
  'signature',
];

export const link: fc.Arbitrary<DelegationLink> = fc.record(
  {
    spiffeId,
    agentId: text(1, 20),
    sessionId: text(1, 20),
    scopes,
    notAfter: time,
    certSha256: sha256,
    publicKey: fc.uint8Array({ minLength: 1, maxLength: 600 }),
    binding,
    signature: fc.uint8Array({ minLength: 1, maxLength: 520 }),
    parentChain: fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 2 }),
  },
  { ...plain, requiredKeys: plainKeys },
);

export const agentContext: fc.Arbitrary<AgentContext> = fc
  .record(
    {
      version: fc.constant(1 as const),
      agentId: text(1, 30),
      sessionId: text(1, 30),
      rootSessionId: text(1, 30),
      principal: fc.record({ id: text(1, 30), issuer: text(1, 30), provenance: provenanceWord }, plain),
      intent: text(0, 60),
      scopes,
      policyVersion: text(1, 30),
      provenance: fc.record(
        { method: text(1, 20), evidenceSha256: sha256, issuer: spiffeId, issuedAt: time },
        plain,
      ),
      delegation: fc.array(link, { maxLength: 4 }),
    },
    plain,
  )
  // Version 2 exactly when a link carries a parentChain (the validator holds both sides to it).
  .map(
    (c) => ({ ...c, version: c.delegation.some((l) => l.parentChain !== undefined) ? 2 : 1 }) as AgentContext,
  );
