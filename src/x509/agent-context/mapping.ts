/**
 * Moves values between the typed AgentContext and the ASN.1 schema classes: the reference encoding the direct
 * DER codec (context-der-writer.ts, context-der-reader.ts) is tested against, and how tests produce encodings
 * of invalid values. Production code does not use it. No rules here: callers validate (validate.ts) before
 * toAsn and after fromAsn. Bytes are always copied, so a decoded context never aliases the
 * input buffer and an encoded one never aliases the caller's arrays.
 */
import { ErrorCode } from '../../errors';
import { fail } from './field-rules';
import {
  AgentContextAsn,
  DelegationBindingAsn,
  DelegationLinkAsn,
  PrincipalAsn,
  TokenProvenanceAsn,
} from './schema';
import {
  DELEGATION_BINDING_VERSION,
  type AgentContext,
  type DelegationBinding,
  type DelegationLink,
} from './types';

function toBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}

function fromBuffer(buffer: ArrayBuffer): Uint8Array {
  return new Uint8Array(buffer.slice(0));
}

export function bindingToAsn(b: DelegationBinding): DelegationBindingAsn {
  const asn = new DelegationBindingAsn();
  asn.version = DELEGATION_BINDING_VERSION;
  asn.parentCertSha256 = toBuffer(b.parentCertSha256);
  asn.childId = b.childId;
  asn.childKeySha256 = toBuffer(b.childKeySha256);
  asn.scopes = [...b.scopes];
  asn.notAfter = new Date(b.notAfter.getTime());
  asn.redeemBy = new Date(b.redeemBy.getTime());
  asn.nonce = toBuffer(b.nonce);
  asn.rootSessionId = b.rootSessionId;
  asn.principalId = b.principalId;
  asn.principalIssuer = b.principalIssuer;
  asn.principalProvenance = b.principalProvenance;
  asn.prevLinkSha256 = toBuffer(b.prevLinkSha256);
  return asn;
}

export function linkToAsn(l: DelegationLink): DelegationLinkAsn {
  const asn = new DelegationLinkAsn();
  asn.spiffeId = l.spiffeId;
  asn.agentId = l.agentId;
  asn.sessionId = l.sessionId;
  asn.scopes = [...l.scopes];
  asn.notAfter = new Date(l.notAfter.getTime());
  asn.certSha256 = toBuffer(l.certSha256);
  asn.publicKey = toBuffer(l.publicKey);
  asn.binding = bindingToAsn(l.binding);
  asn.signature = toBuffer(l.signature);
  if (l.parentChain !== undefined) asn.parentChain = l.parentChain.map(toBuffer);
  return asn;
}

export function contextToAsn(c: AgentContext): AgentContextAsn {
  const asn = new AgentContextAsn();
  asn.version = c.version;
  asn.agentId = c.agentId;
  asn.sessionId = c.sessionId;
  asn.rootSessionId = c.rootSessionId;
  asn.principal = new PrincipalAsn();
  asn.principal.id = c.principal.id;
  asn.principal.issuer = c.principal.issuer;
  asn.principal.provenance = c.principal.provenance;
  asn.intent = c.intent;
  asn.scopes = [...c.scopes];
  asn.policyVersion = c.policyVersion;
  asn.provenance = new TokenProvenanceAsn();
  asn.provenance.method = c.provenance.method;
  asn.provenance.evidenceSha256 = toBuffer(c.provenance.evidenceSha256);
  asn.provenance.issuer = c.provenance.issuer;
  asn.provenance.issuedAt = new Date(c.provenance.issuedAt.getTime());
  asn.delegation = c.delegation.map(linkToAsn);
  return asn;
}

/** Untrusted until validated: the caller must run assertValidDelegationBinding on the result. */
export function bindingFromAsn(asn: DelegationBindingAsn, field: string): unknown {
  // The binding version is not part of the typed value (one version is read), so it is checked here.
  if (asn.version !== DELEGATION_BINDING_VERSION) {
    fail(
      ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
      `${field}.version`,
      `${String(asn.version)} is not supported (only ${DELEGATION_BINDING_VERSION})`,
    );
  }
  return {
    parentCertSha256: fromBuffer(asn.parentCertSha256),
    childId: asn.childId,
    childKeySha256: fromBuffer(asn.childKeySha256),
    scopes: [...asn.scopes],
    notAfter: asn.notAfter,
    redeemBy: asn.redeemBy,
    nonce: fromBuffer(asn.nonce),
    rootSessionId: asn.rootSessionId,
    principalId: asn.principalId,
    principalIssuer: asn.principalIssuer,
    principalProvenance: asn.principalProvenance,
    prevLinkSha256: fromBuffer(asn.prevLinkSha256),
  };
}

function linkFromAsn(asn: DelegationLinkAsn, field: string): unknown {
  return {
    spiffeId: asn.spiffeId,
    agentId: asn.agentId,
    sessionId: asn.sessionId,
    scopes: [...asn.scopes],
    notAfter: asn.notAfter,
    certSha256: fromBuffer(asn.certSha256),
    publicKey: fromBuffer(asn.publicKey),
    binding: bindingFromAsn(asn.binding, `${field}.binding`),
    signature: fromBuffer(asn.signature),
    ...(asn.parentChain !== undefined ? { parentChain: asn.parentChain.map(fromBuffer) } : {}),
  };
}

/** Untrusted until validated: the caller must run assertValidAgentContext on the result. */
export function contextFromAsn(asn: AgentContextAsn): unknown {
  return {
    version: asn.version,
    agentId: asn.agentId,
    sessionId: asn.sessionId,
    rootSessionId: asn.rootSessionId,
    principal: {
      id: asn.principal.id,
      issuer: asn.principal.issuer,
      provenance: asn.principal.provenance,
    },
    intent: asn.intent,
    scopes: [...asn.scopes],
    policyVersion: asn.policyVersion,
    provenance: {
      method: asn.provenance.method,
      evidenceSha256: fromBuffer(asn.provenance.evidenceSha256),
      issuer: asn.provenance.issuer,
      issuedAt: asn.provenance.issuedAt,
    },
    delegation: asn.delegation.map((link, i) => linkFromAsn(link, `delegation[${i}]`)),
  };
}
