/**
 * The agent context carried, signed by the CA, in every Lanyard SVID (docs/design/agent-context.md).
 * These are the decoded, typed values; the ASN.1 schema lives in schema.ts, the DER codec in codec.ts and the
 * extension's OID (a setting, default 1.3.6.1.4.1.262144.1.1) in oid.ts.
 */

/**
 * Version 1: no link carries a parent chain (every context of a single trust domain; byte for byte what earlier
 * releases wrote). Decoding any version but 1 and 2 fails closed.
 */
export const AGENT_CONTEXT_VERSION = 1;

/**
 * Version 2: at least one delegation link carries `parentChain`, the parent's own SVID from another trust domain
 * (docs/design/agent-context.md, "Across trust domains"). A context is version 2 exactly when one of its links
 * carries a chain, so a verifier that predates it refuses it (ERR_UNSUPPORTED_AGENT_CONTEXT_VERSION) rather than
 * read the foreign links without their proof.
 */
export const AGENT_CONTEXT_VERSION_CROSS_DOMAIN = 2;

export type AgentContextVersion = typeof AGENT_CONTEXT_VERSION | typeof AGENT_CONTEXT_VERSION_CROSS_DOMAIN;

/**
 * Version of the DelegationBinding structure. It is the first field of the signed DER, so a parent's
 * signature over one binding version can never be read as a signature over another. Version 2 added
 * principalProvenance; version 3 made childKeySha256 required, so every hop after the first holds a key its
 * parent signed for. Older versions are refused, never read as version 3.
 */
export const DELEGATION_BINDING_VERSION = 3;

/** How the originating principal was established. */
export type PrincipalProvenance = 'verified' | 'workload' | `asserted-by:${string}`;

export interface Principal {
  /** Subject of the principal, e.g. an OIDC `sub` or a user id asserted by a trusted entry. */
  id: string;
  /** Who vouches for `id`: the OIDC issuer URL, or the SPIFFE ID that asserted it. */
  issuer: string;
  provenance: PrincipalProvenance;
}

/** Where the SVID's authority came from: how the workload was attested and by which server. */
export interface TokenProvenance {
  /** Attestation method, e.g. `join_token`, `k8s_psat`, `x509pop`, `renew`, `delegation`. */
  method: string;
  /** SHA-256 of the attestation evidence (never the evidence itself: data minimisation). 32 bytes. */
  evidenceSha256: Uint8Array;
  /** SPIFFE ID of the issuing server. */
  issuer: string;
  issuedAt: Date;
}

/**
 * What a parent hop signed with its own SVID key when it delegated to a child.
 * DER of this structure is the signed message, so every field is covered by the parent's signature.
 */
export interface DelegationBinding {
  /** SHA-256 of the parent's SVID certificate (DER). 32 bytes. */
  parentCertSha256: Uint8Array;
  /** SPIFFE ID the delegation is for. */
  childId: string;
  /**
   * SHA-256 of the child's SubjectPublicKeyInfo (DER), 32 bytes: the child sends it before the parent signs, the
   * server issues the delegated SVID only for that key, and verifiers require the next hop to hold it.
   */
  childKeySha256: Uint8Array;
  /** Scopes granted to the child: a subset of the parent's scopes. */
  scopes: string[];
  /** Latest expiry of any SVID issued from this delegation: not after the parent's own expiry. */
  notAfter: Date;
  /** The grant must be redeemed before this time (server-side check; signed so it cannot be extended). */
  redeemBy: Date;
  /** Fresh random bytes from the parent: makes each grant single-use and unlinkable. 16..64 bytes. */
  nonce: Uint8Array;
  /** Root session of the chain, unchanged along it. */
  rootSessionId: string;
  /** Originating principal, unchanged along the chain: all three Principal fields are signed. */
  principalId: string;
  principalIssuer: string;
  principalProvenance: PrincipalProvenance;
  /** SHA-256 of the DER of the previous link in the chain (see delegationLinkSha256); empty for the first link. */
  prevLinkSha256: Uint8Array;
}

/** One parent hop in the delegation chain, root first. */
export interface DelegationLink {
  /** SPIFFE ID of the parent hop. */
  spiffeId: string;
  agentId: string;
  sessionId: string;
  /** The parent's own scopes. */
  scopes: string[];
  /** Expiry of the parent's SVID. */
  notAfter: Date;
  /** SHA-256 of the parent's SVID certificate (DER). 32 bytes. */
  certSha256: Uint8Array;
  /** The parent's SubjectPublicKeyInfo (DER): verifies `signature` offline. */
  publicKey: Uint8Array;
  binding: DelegationBinding;
  /**
   * Signature by the parent's SVID key over DER(binding). The algorithm follows from the key:
   * ECDSA P-256/SHA-256, P-384/SHA-384 (DER-encoded r,s), RSA PKCS#1 v1.5/SHA-256, Ed25519.
   */
  signature: Uint8Array;
  /**
   * The parent's SVID as its own trust domain's CA issued it (DER certificates, the SVID first, then any
   * intermediates), added when the link was appended by a server of another trust domain. It is what the
   * parent's domain vouches for: a verifier checks it against that domain's bundle and requires it to name this
   * link's SPIFFE ID, key, certificate hash, session, scopes and expiry, the chain's principal and root session,
   * and every link before this one.
   */
  parentChain?: Uint8Array[];
}

export interface AgentContext {
  /** 2 exactly when a link carries `parentChain`, else 1. */
  version: AgentContextVersion;
  agentId: string;
  sessionId: string;
  /** The first session of the delegation chain (equals sessionId when there is no delegation). */
  rootSessionId: string;
  principal: Principal;
  /** Short task intent. Never a prompt or payload. */
  intent: string;
  scopes: string[];
  /** Policy version in force at issuance (content hash of the policy set). */
  policyVersion: string;
  provenance: TokenProvenance;
  /** Parent hops, root first. Empty for a session that was not delegated. */
  delegation: DelegationLink[];
}

/** Decoder limits: anything past them is rejected (ERR_AGENT_CONTEXT_TOO_LARGE), never parsed further. */
export const AGENT_CONTEXT_LIMITS = {
  maxEncodedBytes: 32 * 1024,
  maxDelegationDepth: 16,
  maxScopes: 64,
  maxScopeLength: 128,
  maxIdLength: 2048,
  maxShortStringLength: 256,
  maxIntentLength: 256,
  /** Fits the SubjectPublicKeyInfo of an RSA-8192 key (1062 bytes), the largest key x509/keys.ts accepts. */
  maxPublicKeyBytes: 1100,
  /** An RSA-8192 signature is 1024 bytes; ECDSA and Ed25519 signatures are far smaller. */
  maxSignatureBytes: 1024,
  minNonceBytes: 16,
  maxNonceBytes: 64,
  /** Certificates in one link's parentChain: the SVID and up to three intermediates. */
  maxParentChainCertificates: 4,
  maxParentCertificateBytes: 16 * 1024,
} as const;
