/**
 * JSON form of the agent context: bytes as lower-case hex, times as ISO 8601. `lanyard svid inspect --json`
 * prints it, `lanyard svid mint --context FILE` reads it, and logs and audit records reuse it, so one mapping
 * serves every place the context leaves the process.
 */
import { MalformedAgentContextError } from '../../errors';
import type { AgentContext, DelegationBinding, DelegationLink } from './types';
import { assertValidAgentContext } from './validate';

export interface DelegationBindingJson {
  parentCertSha256: string;
  childId: string;
  childKeySha256: string;
  scopes: string[];
  notAfter: string;
  redeemBy: string;
  nonce: string;
  rootSessionId: string;
  principalId: string;
  principalIssuer: string;
  principalProvenance: string;
  prevLinkSha256: string;
}

export interface DelegationLinkJson {
  spiffeId: string;
  agentId: string;
  sessionId: string;
  scopes: string[];
  notAfter: string;
  certSha256: string;
  publicKey: string;
  binding: DelegationBindingJson;
  signature: string;
  /** The parent's SVID chain (hex DER, SVID first), on a link appended across a trust-domain boundary. */
  parentChain?: string[];
}

export interface AgentContextJson {
  version: number;
  agentId: string;
  sessionId: string;
  rootSessionId: string;
  principal: { id: string; issuer: string; provenance: string };
  intent: string;
  scopes: string[];
  policyVersion: string;
  provenance: { method: string; evidenceSha256: string; issuer: string; issuedAt: string };
  delegation: DelegationLinkJson[];
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const iso = (d: Date): string => d.toISOString().replace('.000Z', 'Z');

function bindingToJson(b: DelegationBinding): DelegationBindingJson {
  return {
    parentCertSha256: hex(b.parentCertSha256),
    childId: b.childId,
    childKeySha256: hex(b.childKeySha256),
    scopes: [...b.scopes],
    notAfter: iso(b.notAfter),
    redeemBy: iso(b.redeemBy),
    nonce: hex(b.nonce),
    rootSessionId: b.rootSessionId,
    principalId: b.principalId,
    principalIssuer: b.principalIssuer,
    principalProvenance: b.principalProvenance,
    prevLinkSha256: hex(b.prevLinkSha256),
  };
}

function linkToJson(l: DelegationLink): DelegationLinkJson {
  return {
    spiffeId: l.spiffeId,
    agentId: l.agentId,
    sessionId: l.sessionId,
    scopes: [...l.scopes],
    notAfter: iso(l.notAfter),
    certSha256: hex(l.certSha256),
    publicKey: hex(l.publicKey),
    binding: bindingToJson(l.binding),
    signature: hex(l.signature),
    ...(l.parentChain !== undefined ? { parentChain: l.parentChain.map(hex) } : {}),
  };
}

export function agentContextToJson(ctx: AgentContext): AgentContextJson {
  return {
    version: ctx.version,
    agentId: ctx.agentId,
    sessionId: ctx.sessionId,
    rootSessionId: ctx.rootSessionId,
    principal: { ...ctx.principal },
    intent: ctx.intent,
    scopes: [...ctx.scopes],
    policyVersion: ctx.policyVersion,
    provenance: {
      method: ctx.provenance.method,
      evidenceSha256: hex(ctx.provenance.evidenceSha256),
      issuer: ctx.provenance.issuer,
      issuedAt: iso(ctx.provenance.issuedAt),
    },
    delegation: ctx.delegation.map(linkToJson),
  };
}

/**
 * Parse the JSON form back, then run the same structural checks as the DER decoder, so a hand-written
 * context file is held to the rules a certificate is. Throws AgentContextError naming the field.
 */
export function agentContextFromJson(value: unknown): AgentContext {
  const converted = convert(value, '');
  assertValidAgentContext(converted);
  return converted;
}

const BYTE_FIELDS = new Set([
  'evidenceSha256',
  'parentCertSha256',
  'childKeySha256',
  'nonce',
  'prevLinkSha256',
  'certSha256',
  'publicKey',
  'signature',
]);
const TIME_FIELDS = new Set(['issuedAt', 'notAfter', 'redeemBy']);

// Walks the JSON tree turning the known byte and time fields into Uint8Array and Date; everything else is
// passed through for the validator to judge, so unknown or ill-typed fields fail there with one message style.
function convert(value: unknown, path: string): unknown {
  if (Array.isArray(value)) return value.map((v, i) => convert(v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    const field = path === '' ? key : `${path}.${key}`;
    if (BYTE_FIELDS.has(key)) out[key] = hexToBytes(v, field);
    else if (key === 'parentChain' && Array.isArray(v))
      out[key] = v.map((c, i) => hexToBytes(c, `${field}[${i}]`));
    else if (TIME_FIELDS.has(key)) out[key] = isoToDate(v, field);
    else out[key] = convert(v, field);
  }
  return out;
}

function hexToBytes(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(v)) {
    throw new MalformedAgentContextError(`agent context ${field}: expected hex bytes`);
  }
  return new Uint8Array(Buffer.from(v, 'hex'));
}

function isoToDate(v: unknown, field: string): Date {
  const d = typeof v === 'string' ? new Date(v) : new Date(NaN);
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(d.getTime())) {
    throw new MalformedAgentContextError(`agent context ${field}: expected an ISO 8601 time`);
  }
  return d;
}
