/*
 * ASN.1 module of the agent-context extension (extnValue of a non-critical extension, DER).
 * This text is the specification. The classes below are its reference implementation (used by tests and the
 * "before" benchmark); codec.ts reads and writes it directly as DER and enforces the constraints.
 *
 * LanyardAgentContext-v1 DEFINITIONS IMPLICIT TAGS ::= BEGIN
 *
 * -- Default OID: arc 1.1 under the Private Enterprise Number 262144, which is unassigned and NOT registered
 * -- to Lanyard. A deployment may set another (server agent_context.oid; the verifier's agentContextOid);
 * -- every arc stays below 2^28 so that Go's crypto/x509 and Python cryptography 38 parse the certificate.
 * id-lanyard-agentContext OBJECT IDENTIFIER ::= { iso(1) org(3) dod(6) internet(1) private(4) enterprise(1)
 *                                                 262144 1 1 }
 *
 * -- Sizes of strings are counted in UTF-8 bytes. No string may contain control characters
 * -- (C0, DEL, C1) or bidirectional formatting characters. Times are UTC with whole seconds,
 * -- "YYYYMMDDHHMMSSZ", between 1970 and 9999.
 *
 * AgentContext ::= SEQUENCE {
 *   version        INTEGER { v1(1) },          -- any other value: ERR_UNSUPPORTED_AGENT_CONTEXT_VERSION
 *   agentId        UTF8String (SIZE (1..2048)),
 *   sessionId      UTF8String (SIZE (1..256)),
 *   rootSessionId  UTF8String (SIZE (1..256)),
 *   principal      Principal,
 *   intent         UTF8String (SIZE (0..256)),  -- short task intent, never a prompt or payload
 *   scopes         Scopes,
 *   policyVersion  UTF8String (SIZE (1..256)),
 *   provenance     TokenProvenance,
 *   delegation     SEQUENCE SIZE (0..16) OF DelegationLink  -- parent hops, root first
 * }
 *
 * Scopes ::= SEQUENCE SIZE (0..64) OF Scope   -- no two equal
 * Scope ::= UTF8String (SIZE (1..128))        -- printable ASCII without space: 0x21..0x7E
 *
 * SpiffeId ::= UTF8String (SIZE (1..2048))    -- "spiffe://" trust-domain path, SPIFFE-ID syntax
 * Sha256 ::= OCTET STRING (SIZE (32))
 *
 * Principal ::= SEQUENCE {
 *   id          UTF8String (SIZE (1..2048)),
 *   issuer      UTF8String (SIZE (1..2048)),
 *   provenance  UTF8String (SIZE (1..2060))   -- "verified" | "workload" | "asserted-by:" SpiffeId
 * }
 *
 * TokenProvenance ::= SEQUENCE {
 *   method          UTF8String (SIZE (1..256)),
 *   evidenceSha256  Sha256,
 *   issuer          SpiffeId,                 -- the issuing server
 *   issuedAt        GeneralizedTime
 * }
 *
 * DelegationLink ::= SEQUENCE {
 *   spiffeId    SpiffeId,                     -- the parent hop
 *   agentId     UTF8String (SIZE (1..2048)),
 *   sessionId   UTF8String (SIZE (1..256)),
 *   scopes      Scopes,                       -- the parent's own scopes
 *   notAfter    GeneralizedTime,              -- expiry of the parent's SVID
 *   certSha256  Sha256,                       -- of the parent's SVID (DER)
 *   publicKey   OCTET STRING (SIZE (1..1100)), -- DER SubjectPublicKeyInfo of the parent's SVID key
 *   binding     DelegationBinding,
 *   signature   OCTET STRING (SIZE (1..1024))  -- by publicKey over the DER of binding
 * }
 *
 * DelegationBinding ::= SEQUENCE {
 *   version           INTEGER { v3(3) },   -- v1 lacked principalProvenance, v2 let childKeySha256 be absent;
 *                                          -- any other value is refused
 *   parentCertSha256  Sha256,
 *   childId           SpiffeId,
 *   childKeySha256    Sha256,              -- of the child's SubjectPublicKeyInfo (DER), bound at grant time
 *   scopes            Scopes,
 *   notAfter          GeneralizedTime,
 *   redeemBy          GeneralizedTime,
 *   nonce             OCTET STRING (SIZE (16..64)),
 *   rootSessionId     UTF8String (SIZE (1..256)),
 *   principalId       UTF8String (SIZE (1..2048)),
 *   principalIssuer   UTF8String (SIZE (1..2048)),
 *   principalProvenance UTF8String (SIZE (1..2060)), -- as Principal.provenance
 *   prevLinkSha256    OCTET STRING (SIZE (0 | 32)) -- SHA-256 of the previous DelegationLink (DER), empty for the first
 * }
 *
 * END
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
