/**
 * The parent's side of a delegation grant: build the DelegationBinding from its own session SVID and sign it
 * with its own SVID key, locally. The key never leaves the parent; CreateGrant receives only the DER and the
 * signature, and the server cannot make a delegation the parent did not sign. The binding names the key the
 * child will hold (the child sends its hash first), so the CA cannot put another key in the child's place.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { InvalidArgumentError } from '../errors';
import {
  decodeAgentContext,
  delegationLinkSha256,
  encodeDelegationBinding,
} from '../x509/agent-context/codec';
import { signDelegationBinding } from '../x509/agent-context/delegation-signature';
import { agentContextExtension, resolveAgentContextOid } from '../x509/agent-context/oid';
import type { DelegationBinding } from '../x509/agent-context/types';
import { ParsedCertificate } from '../x509/certificate';
import { spkiDer } from '../x509/keys';

export interface GrantParams {
  /** The parent's current session SVID (DER or parsed): the one it will present to CreateGrant. */
  parentCert: Uint8Array | ParsedCertificate;
  /** Its private key. */
  parentKey: KeyObject;
  childId: string;
  /** A subset of the parent's scopes. */
  scopes: string[];
  /** When the delegated SVIDs must end; default (and at most) the parent certificate's notAfter. */
  notAfter?: Date;
  /** Default now + 60 s, the most the server accepts. */
  redeemBy?: Date;
  /**
   * The key the child will hold, which the binding names: its public key, or the SHA-256 of its
   * SubjectPublicKeyInfo DER (32 bytes, or 64 hex digits as `HandoffKey.id` and a key offer give it). The server
   * issues the delegated SVID only for that key, and verifiers refuse a next hop holding any other.
   */
  childKey: ChildKey;
  now?: Date;
  /** OID the parent's context is read under: the issuing server's `agent_context.oid`. Default the default OID. */
  agentContextOid?: string;
}

/** A child's public key, or the SHA-256 of its SubjectPublicKeyInfo DER (bytes or hex). */
export type ChildKey = KeyObject | Uint8Array | string;

/**
 * The 32-byte SHA-256 of the child's SubjectPublicKeyInfo that a binding names.
 * @throws MalformedInputError (ERR_INVALID_ARGUMENT) for a private key, or bytes or text that are not a digest.
 */
export function childKeySha256(childKey: ChildKey): Uint8Array {
  if (typeof childKey === 'string') {
    if (!/^[0-9a-f]{64}$/i.test(childKey)) {
      throw new InvalidArgumentError('childKey: expected the hex SHA-256 (64 digits) of the child key');
    }
    return new Uint8Array(Buffer.from(childKey, 'hex'));
  }
  if (childKey instanceof Uint8Array) {
    if (childKey.length !== 32) {
      throw new InvalidArgumentError(`childKey: expected a 32-byte SHA-256, got ${childKey.length} bytes`);
    }
    return Uint8Array.from(childKey);
  }
  // Hashing the public half of a private key would work, but a parent holding the child's private key is a
  // mistake worth refusing: the key is the child's alone.
  if (childKey.type !== 'public') {
    throw new InvalidArgumentError("childKey: pass the child's public key");
  }
  return new Uint8Array(createHash('sha256').update(spkiDer(childKey)).digest());
}

export interface SignedGrant {
  binding: DelegationBinding;
  /** What CreateGrant takes. */
  bindingDer: Uint8Array;
  signature: Uint8Array;
}

export function signGrant(p: GrantParams): SignedGrant {
  const cert =
    p.parentCert instanceof ParsedCertificate ? p.parentCert : ParsedCertificate.fromDer(p.parentCert);
  const ext = agentContextExtension(cert, resolveAgentContextOid(p.agentContextOid));
  if (ext === undefined) {
    throw new InvalidArgumentError('the parent certificate has no agent context');
  }
  const ctx = decodeAgentContext(ext.value);
  const now = p.now ?? new Date();
  const last = ctx.delegation[ctx.delegation.length - 1];
  const binding: DelegationBinding = {
    parentCertSha256: cert.sha256,
    childId: p.childId,
    childKeySha256: childKeySha256(p.childKey),
    scopes: [...p.scopes],
    notAfter: seconds(p.notAfter ?? cert.notAfter),
    redeemBy: seconds(p.redeemBy ?? new Date(now.getTime() + 60_000)),
    nonce: new Uint8Array(randomBytes(32)),
    rootSessionId: ctx.rootSessionId,
    principalId: ctx.principal.id,
    principalIssuer: ctx.principal.issuer,
    principalProvenance: ctx.principal.provenance,
    prevLinkSha256: last === undefined ? new Uint8Array(0) : delegationLinkSha256(last),
  };
  return {
    binding,
    bindingDer: encodeDelegationBinding(binding),
    signature: signDelegationBinding(binding, p.parentKey),
  };
}

/** The binding encodes whole seconds; rounding down keeps every bound no later than asked. */
function seconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}
