/** Sample values and raw encoders shared by the agent-context tests. */
import { AsnSerializer } from '@peculiar/asn1-schema';
import { AgentContextError } from '../../../src/errors';
import type { AgentContext, DelegationBinding, DelegationLink } from '../../../src/x509/agent-context';
import { contextToAsn } from '../../../src/x509/agent-context/mapping';
import { expectRefusalAs } from '../../support/refusal';

export function bytes(length: number, fill = 0xab): Uint8Array {
  return new Uint8Array(length).fill(fill);
}

export const T0 = new Date('2025-06-01T12:00:00Z');
export const T1 = new Date('2025-06-01T13:00:00Z');

export function sampleBinding(overrides: Partial<DelegationBinding> = {}): DelegationBinding {
  return {
    parentCertSha256: bytes(32, 0x11),
    childId: 'spiffe://example.org/agent/tool-runner',
    childKeySha256: bytes(32, 0x22),
    scopes: ['repo:read', 'issues:write'],
    notAfter: T1,
    redeemBy: new Date('2025-06-01T12:01:00Z'),
    nonce: bytes(16, 0x33),
    rootSessionId: 'sess-root-0001',
    principalId: 'alice',
    principalIssuer: 'https://idp.example.org',
    principalProvenance: 'verified',
    prevLinkSha256: new Uint8Array(0),
    ...overrides,
  };
}

export function sampleLink(overrides: Partial<DelegationLink> = {}): DelegationLink {
  return {
    spiffeId: 'spiffe://example.org/agent/planner',
    agentId: 'planner',
    sessionId: 'sess-root-0001',
    scopes: ['repo:read', 'issues:write', 'deploy'],
    notAfter: T1,
    certSha256: bytes(32, 0x11),
    publicKey: bytes(91, 0x44),
    binding: sampleBinding(),
    signature: bytes(72, 0x55),
    ...overrides,
  };
}

export function sampleContext(overrides: Partial<AgentContext> = {}): AgentContext {
  return {
    version: 1,
    agentId: 'tool-runner',
    sessionId: 'sess-child-0002',
    rootSessionId: 'sess-root-0001',
    principal: { id: 'alice', issuer: 'https://idp.example.org', provenance: 'verified' },
    intent: 'triage open issues in example/repo',
    scopes: ['repo:read', 'issues:write'],
    policyVersion: 'sha256:0f1e2d',
    provenance: {
      method: 'delegation',
      evidenceSha256: bytes(32, 0x66),
      issuer: 'spiffe://example.org/lanyard/server',
      issuedAt: T0,
    },
    delegation: [],
    ...overrides,
  };
}

/** A context with `n` (unsigned) links, each chained to the one before by a made-up hash. */
export function contextWithLinks(n: number): AgentContext {
  const delegation = Array.from({ length: n }, (_, i) =>
    sampleLink({
      agentId: `agent-${i}`,
      binding: sampleBinding({ prevLinkSha256: i === 0 ? new Uint8Array(0) : bytes(32, i) }),
    }),
  );
  return sampleContext({ delegation });
}

/**
 * DER straight from the schema classes, skipping validation: how the tests produce well-formed encodings
 * of values that break a rule, to prove the decoder refuses them on its own.
 */
export function rawEncode(value: AgentContext): Uint8Array {
  return new Uint8Array(AsnSerializer.serialize(contextToAsn(value)));
}

/** Asserts that fn throws an AgentContextError with the given code (and message fragment). */
export function expectAgentContextError(fn: () => unknown, code: string, messageIncludes?: string): void {
  expectRefusalAs(fn, AgentContextError, code, messageIncludes);
}
