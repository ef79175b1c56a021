/**
 * The parent's side of a delegation grant: build the DelegationBinding from its own session SVID and sign it
 * with its own SVID key, locally. The key never leaves the parent; CreateGrant receives only the DER and the
 * signature, and the server cannot make a delegation the parent did not sign.
 */
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { ErrorCode, MalformedInputError } from '../errors';
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
  /** When the child's key is known in advance: binds the grant to it (the child must redeem with that key). */
  childPublicKey?: KeyObject;
  now?: Date;
  /** OID the parent's context is read under: the issuing server's `agent_context.oid`. Default the default OID. */
  agentContextOid?: string;
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
    throw new MalformedInputError(ErrorCode.INVALID_ARGUMENT, 'the parent certificate has no agent context');
  }
  const ctx = decodeAgentContext(ext.value);
  const now = p.now ?? new Date();
  const last = ctx.delegation[ctx.delegation.length - 1];
  const binding: DelegationBinding = {
    parentCertSha256: cert.sha256,
    childId: p.childId,
    ...(p.childPublicKey !== undefined
      ? { childKeySha256: new Uint8Array(createHash('sha256').update(spkiDer(p.childPublicKey)).digest()) }
      : {}),
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
