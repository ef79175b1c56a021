/*
 * ASN.1 module of the agent-context extension (extnValue of a non-critical extension, DER).
 * The specification is the module docs/design/agent-context.asn1 (an asn1c-compiled decoder holds Lanyard's
 * bytes to it in test/integration/interop/agent-context-asn1.test.ts). The classes below are its reference implementation
 * (used by tests and the "before" benchmark); codec.ts reads and writes it directly as DER and enforces the
 * constraints.
 *
 * Why the public key is an OCTET STRING holding SPKI DER rather than an embedded SubjectPublicKeyInfo:
 * every field here is then re-encoded from plain values, which is what makes the decoder's DER check
 * (re-encode and compare bytes) sound; an embedded SPKI would carry an open-type algorithm parameter that
 * the ASN.1 library re-emits as it found it. The key itself is parsed, strictly, by node:crypto when the
 * link's signature is checked.
 */
import { AsnProp, AsnPropTypes } from '@peculiar/asn1-schema';

// Field order in these classes is the order of the SEQUENCE elements on the wire: do not reorder.
// OCTET STRING values are ArrayBuffers here because that is what the ASN.1 library reads and writes.

export class PrincipalAsn {
  @AsnProp({ type: AsnPropTypes.Utf8String })
  id = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  issuer = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  provenance = '';
}

export class TokenProvenanceAsn {
  @AsnProp({ type: AsnPropTypes.Utf8String })
  method = '';

  @AsnProp({ type: AsnPropTypes.OctetString })
  evidenceSha256 = new ArrayBuffer(0);

  @AsnProp({ type: AsnPropTypes.Utf8String })
  issuer = '';

  @AsnProp({ type: AsnPropTypes.GeneralizedTime })
  issuedAt = new Date(0);
}

export class DelegationBindingAsn {
  @AsnProp({ type: AsnPropTypes.Integer })
  version = 0;

  @AsnProp({ type: AsnPropTypes.OctetString })
  parentCertSha256 = new ArrayBuffer(0);

  @AsnProp({ type: AsnPropTypes.Utf8String })
  childId = '';

  @AsnProp({ type: AsnPropTypes.OctetString })
  childKeySha256 = new ArrayBuffer(0);

  @AsnProp({ type: AsnPropTypes.Utf8String, repeated: 'sequence' })
  scopes: string[] = [];

  @AsnProp({ type: AsnPropTypes.GeneralizedTime })
  notAfter = new Date(0);

  @AsnProp({ type: AsnPropTypes.GeneralizedTime })
  redeemBy = new Date(0);

  @AsnProp({ type: AsnPropTypes.OctetString })
  nonce = new ArrayBuffer(0);

  @AsnProp({ type: AsnPropTypes.Utf8String })
  rootSessionId = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  principalId = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  principalIssuer = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  principalProvenance = '';

  @AsnProp({ type: AsnPropTypes.OctetString })
  prevLinkSha256 = new ArrayBuffer(0);
}

export class DelegationLinkAsn {
  @AsnProp({ type: AsnPropTypes.Utf8String })
  spiffeId = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  agentId = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  sessionId = '';

  @AsnProp({ type: AsnPropTypes.Utf8String, repeated: 'sequence' })
  scopes: string[] = [];

  @AsnProp({ type: AsnPropTypes.GeneralizedTime })
  notAfter = new Date(0);

  @AsnProp({ type: AsnPropTypes.OctetString })
  certSha256 = new ArrayBuffer(0);

  @AsnProp({ type: AsnPropTypes.OctetString })
  publicKey = new ArrayBuffer(0);

  @AsnProp({ type: DelegationBindingAsn })
  binding = new DelegationBindingAsn();

  @AsnProp({ type: AsnPropTypes.OctetString })
  signature = new ArrayBuffer(0);

  @AsnProp({
    type: AsnPropTypes.OctetString,
    repeated: 'sequence',
    context: 0,
    implicit: true,
    optional: true,
  })
  parentChain?: ArrayBuffer[];
}

export class AgentContextAsn {
  @AsnProp({ type: AsnPropTypes.Integer })
  version = 0;

  @AsnProp({ type: AsnPropTypes.Utf8String })
  agentId = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  sessionId = '';

  @AsnProp({ type: AsnPropTypes.Utf8String })
  rootSessionId = '';

  @AsnProp({ type: PrincipalAsn })
  principal = new PrincipalAsn();

  @AsnProp({ type: AsnPropTypes.Utf8String })
  intent = '';

  @AsnProp({ type: AsnPropTypes.Utf8String, repeated: 'sequence' })
  scopes: string[] = [];

  @AsnProp({ type: AsnPropTypes.Utf8String })
  policyVersion = '';

  @AsnProp({ type: TokenProvenanceAsn })
  provenance = new TokenProvenanceAsn();

  @AsnProp({ type: DelegationLinkAsn, repeated: 'sequence' })
  delegation: DelegationLinkAsn[] = [];
}
