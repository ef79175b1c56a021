/**
 * Real delegation chains for verifier tests: every hop has its own key and an SVID issued by a real CA
 * (src/x509/profiles.ts), every link is signed by the parent's SVID key (buildDelegationLink), and contexts are
 * DER-encoded with the production codec. Each step takes overrides so a test can break exactly one rule while
 * keeping every signature genuine.
 */
import { createHash, KeyObject, randomBytes } from 'node:crypto';
import { ParsedCertificate } from '../../src/x509/certificate';
import { encodeAgentContext, delegationLinkSha256 } from '../../src/x509/agent-context/codec';
import { buildDelegationLink } from '../../src/x509/agent-context/delegation-signature';
import type {
  AgentContext,
  DelegationBinding,
  DelegationLink,
  Principal,
} from '../../src/x509/agent-context/types';
import { generateSigningKeyPair, spkiDer } from '../../src/x509/keys';
import { createRootCa, issueX509Svid } from '../../src/x509/profiles';

export interface Ca {
  cert: ParsedCertificate;
  key: KeyObject;
}

export interface Hop {
  id: string;
  key: { privateKey: KeyObject; publicKey: KeyObject };
  cert: ParsedCertificate;
  context: AgentContext;
}

export const TD = 'example.org';
export const ALICE: Principal = { id: 'alice', issuer: 'https://idp.example.org', provenance: 'verified' };

/** Whole seconds: the context encodes times as GeneralizedTime without fractions. */
export function seconds(d: Date | number): Date {
  const ms = typeof d === 'number' ? d : d.getTime();
  return new Date(Math.floor(ms / 1000) * 1000);
}

export function newCa(td = TD, now = new Date()): Ca {
  const key = generateSigningKeyPair('ec-p256').privateKey;
  const { cert } = createRootCa({ trustDomain: td, ttlSeconds: 24 * 3600, key, now });
  return { cert, key };
}

export function baseContext(
  fields: Partial<AgentContext> & { sessionId: string; scopes: string[] },
): AgentContext {
  return {
    version: 1,
    agentId: 'agent',
    rootSessionId: fields.sessionId,
    principal: ALICE,
    intent: 'summarise the quarterly report',
    policyVersion: 'sha256:policy-v1',
    provenance: {
      method: 'join_token',
      evidenceSha256: new Uint8Array(32).fill(7),
      issuer: `spiffe://${TD}/lanyard/server`,
      issuedAt: seconds(Date.now() - 60_000),
    },
    delegation: [],
    ...fields,
  };
}

/** Issue an SVID for `id` with `context` (undefined: no extension) from `ca`. */
export function issueSvid(
  ca: Ca,
  id: string,
  key: KeyObject,
  context: AgentContext | undefined,
  ttlSeconds: number,
  now = new Date(),
): ParsedCertificate {
  return issueX509Svid({
    spiffeId: id,
    publicKey: key,
    issuer: ca,
    ttlSeconds,
    now,
    ...(context !== undefined ? { agentContextDer: encodeAgentContext(context) } : {}),
  }).cert;
}

export function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(b).digest());
}

/**
 * The link a parent hop signs when delegating to `childId` (whose key is `childPublicKey`), with `scopes` and
 * expiry `notAfter`; `prev` is the parent's own last link. Overrides apply to the binding before signing and
 * to the link fields around it.
 */
export function delegate(
  parent: Hop,
  childId: string,
  childPublicKey: KeyObject,
  scopes: string[],
  notAfter: Date,
  overrides: { binding?: Partial<DelegationBinding>; link?: Partial<Omit<DelegationLink, 'binding'>> } = {},
): DelegationLink {
  const prev = parent.context.delegation[parent.context.delegation.length - 1];
  const binding: DelegationBinding = {
    parentCertSha256: parent.cert.sha256,
    childId,
    childKeySha256: sha256(spkiDer(childPublicKey)),
    scopes,
    notAfter: seconds(notAfter),
    redeemBy: seconds(Date.now() + 60_000),
    nonce: new Uint8Array(randomBytes(16)),
    rootSessionId: parent.context.rootSessionId,
    principalId: parent.context.principal.id,
    principalIssuer: parent.context.principal.issuer,
    principalProvenance: parent.context.principal.provenance,
    prevLinkSha256: prev === undefined ? new Uint8Array(0) : delegationLinkSha256(prev),
    ...overrides.binding,
  };
  const link = buildDelegationLink({
    spiffeId: parent.id,
    agentId: parent.context.agentId,
    sessionId: parent.context.sessionId,
    scopes: parent.context.scopes,
    notAfter: parent.cert.notAfter,
    certSha256: parent.cert.sha256,
    binding,
    privateKey: parent.key.privateKey,
  });
  return { ...link, ...overrides.link };
}

export interface ChainOptions {
  ca: Ca;
  /** Per hop: path of its SPIFFE ID (under TD), its scopes, and its SVID TTL in seconds. */
  hops: { name: string; scopes: string[]; ttlSeconds: number }[];
}

/**
 * A chain of hops where hop i (i >= 1) is delegated from hop i-1 with exactly its scopes and its SVID's expiry.
 * Hop 0 is the root session.
 */
export function buildChain({ ca, hops }: ChainOptions): Hop[] {
  const out: Hop[] = [];
  // One issuance instant for the whole chain, so a binding's expiry and its child's SVID expiry agree exactly.
  const now = seconds(Date.now());
  hops.forEach((h, i) => {
    const id = `spiffe://${TD}/${h.name}`;
    const key = generateSigningKeyPair('ec-p256');
    const notAfter = new Date(now.getTime() + h.ttlSeconds * 1000);
    const parent = out[i - 1];
    const delegation = parent === undefined ? [] : [...parent.context.delegation];
    if (parent !== undefined) delegation.push(delegate(parent, id, key.publicKey, h.scopes, notAfter));
    const context = baseContext({
      agentId: h.name,
      sessionId: `session-${h.name}`,
      rootSessionId: parent?.context.rootSessionId ?? `session-${h.name}`,
      scopes: h.scopes,
      delegation,
    });
    const cert = issueSvid(ca, id, key.publicKey, context, h.ttlSeconds, now);
    out.push({ id, key, cert, context });
  });
  return out;
}

/** The standard three-level chain of the sessions issue: planner -> tool-runner -> retrieval. */
export function plannerChain(ca: Ca): Hop[] {
  return buildChain({
    ca,
    hops: [
      { name: 'planner', scopes: ['docs:read', 'docs:write', 'tools:run'], ttlSeconds: 3600 },
      { name: 'tool-runner', scopes: ['docs:read', 'tools:run'], ttlSeconds: 1800 },
      { name: 'retrieval', scopes: ['docs:read'], ttlSeconds: 900 },
    ],
  });
}
