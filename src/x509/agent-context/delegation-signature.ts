/**
 * The parent's signature over a delegation binding: producing it, checking it, and assembling a link.
 * Only encoding and signature live here; whether a chain of links is acceptable (scopes narrow, expiry
 * shrinks, hashes chain) is the verifier's job.
 */
import type { KeyObject } from 'node:crypto';
import { InvalidArgumentError } from '../../errors';
import { publicKeyFromSpki, signWithKey, spkiDer, verifyWithKey } from '../keys';
import { encodeDelegationBinding } from './codec';
import type { DelegationBinding, DelegationLink } from './types';
import { assertValidDelegationLink } from './validate';

/**
 * Signs DER(binding) with the parent's SVID private key, using the one scheme keys.ts fixes for that key type.
 * Throws AgentContextError for an invalid binding, MalformedInputError for a key Lanyard does not accept.
 */
export function signDelegationBinding(binding: DelegationBinding, parentPrivateKey: KeyObject): Uint8Array {
  if (parentPrivateKey.type !== 'private') {
    throw new InvalidArgumentError('a delegation binding is signed with a private key');
  }
  return signWithKey(encodeDelegationBinding(binding), parentPrivateKey);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * True only if link.signature is a valid signature by link.publicKey over DER(link.binding).
 * Never throws: an unparseable or unaccepted key, or an invalid binding, is simply not a valid signature.
 * The key bytes must be exactly what node:crypto exports for the parsed key: BER variants and trailing data
 * are refused rather than silently normalised, because other rules hash these bytes (childKeySha256).
 */
export function verifyDelegationLinkSignature(link: DelegationLink): boolean {
  let message: Uint8Array;
  let key: KeyObject;
  try {
    message = encodeDelegationBinding(link.binding);
    key = publicKeyFromSpki(link.publicKey);
    if (!sameBytes(spkiDer(key), link.publicKey)) return false;
  } catch {
    return false;
  }
  return verifyWithKey(message, link.signature, key);
}

/** Everything a link holds except what follows from the parent's private key. */
export interface DelegationLinkParams extends Omit<DelegationLink, 'publicKey' | 'signature'> {
  /** The parent's SVID private key: signs the binding, and its public half becomes link.publicKey. */
  privateKey: KeyObject;
}

/**
 * Signs params.binding and returns the complete link. The public key is derived from the private key rather
 * than passed in, so a link can never carry a key that did not make its signature.
 */
export function buildDelegationLink(params: DelegationLinkParams): DelegationLink {
  const { privateKey, ...fields } = params;
  const signature = signDelegationBinding(fields.binding, privateKey);
  const draft: unknown = { ...fields, publicKey: spkiDer(privateKey), signature };
  assertValidDelegationLink(draft);
  return copyLink(draft);
}

/** A deep copy holding exactly the DelegationLink fields, so later changes to the inputs cannot alter it. */
function copyLink(l: DelegationLink): DelegationLink {
  const b = l.binding;
  return {
    spiffeId: l.spiffeId,
    agentId: l.agentId,
    sessionId: l.sessionId,
    scopes: [...l.scopes],
    notAfter: new Date(l.notAfter.getTime()),
    certSha256: Uint8Array.from(l.certSha256),
    publicKey: Uint8Array.from(l.publicKey),
    binding: {
      parentCertSha256: Uint8Array.from(b.parentCertSha256),
      childId: b.childId,
      childKeySha256: Uint8Array.from(b.childKeySha256),
      scopes: [...b.scopes],
      notAfter: new Date(b.notAfter.getTime()),
      redeemBy: new Date(b.redeemBy.getTime()),
      nonce: Uint8Array.from(b.nonce),
      rootSessionId: b.rootSessionId,
      principalId: b.principalId,
      principalIssuer: b.principalIssuer,
      principalProvenance: b.principalProvenance,
      prevLinkSha256: Uint8Array.from(b.prevLinkSha256),
    },
    signature: Uint8Array.from(l.signature),
  };
}
