/**
 * The agent-context ASN.1 module (schema.ts) written straight to DER with the shared writer, without building
 * asn1-schema object graphs: issuance and delegation encode on every call. The bytes are those of the schema
 * classes, element for element (the differential property test holds the two to that). Callers validate first;
 * nothing here checks a rule.
 */
import {
  derGeneralizedTime,
  derImplicitPrimitive,
  derOctetString,
  derSequence,
  derSmallInteger,
  derUtf8String,
} from '../der-writer';
import {
  DELEGATION_BINDING_VERSION,
  type AgentContext,
  type DelegationBinding,
  type DelegationLink,
} from './types';

function scopesDer(scopes: readonly string[]): Uint8Array {
  return derSequence(...scopes.map(derUtf8String));
}

export function bindingDer(b: DelegationBinding): Uint8Array {
  const parts = [
    derSmallInteger(DELEGATION_BINDING_VERSION),
    derOctetString(b.parentCertSha256),
    derUtf8String(b.childId),
  ];
  // childKeySha256 [0] IMPLICIT OCTET STRING OPTIONAL: absent means no element at all.
  if (b.childKeySha256 !== undefined) parts.push(derImplicitPrimitive(0, b.childKeySha256));
  parts.push(
    scopesDer(b.scopes),
    derGeneralizedTime(b.notAfter),
    derGeneralizedTime(b.redeemBy),
    derOctetString(b.nonce),
    derUtf8String(b.rootSessionId),
    derUtf8String(b.principalId),
    derUtf8String(b.principalIssuer),
    derOctetString(b.prevLinkSha256),
  );
  return derSequence(...parts);
}

export function linkDer(l: DelegationLink): Uint8Array {
  return derSequence(
    derUtf8String(l.spiffeId),
    derUtf8String(l.agentId),
    derUtf8String(l.sessionId),
    scopesDer(l.scopes),
    derGeneralizedTime(l.notAfter),
    derOctetString(l.certSha256),
    derOctetString(l.publicKey),
    bindingDer(l.binding),
    derOctetString(l.signature),
  );
}

export function contextDer(c: AgentContext): Uint8Array {
  return derSequence(
    derSmallInteger(c.version),
    derUtf8String(c.agentId),
    derUtf8String(c.sessionId),
    derUtf8String(c.rootSessionId),
    derSequence(
      derUtf8String(c.principal.id),
      derUtf8String(c.principal.issuer),
      derUtf8String(c.principal.provenance),
    ),
    derUtf8String(c.intent),
    scopesDer(c.scopes),
    derUtf8String(c.policyVersion),
    derSequence(
      derUtf8String(c.provenance.method),
      derOctetString(c.provenance.evidenceSha256),
      derUtf8String(c.provenance.issuer),
      derGeneralizedTime(c.provenance.issuedAt),
    ),
    derSequence(...c.delegation.map(linkDer)),
  );
}
