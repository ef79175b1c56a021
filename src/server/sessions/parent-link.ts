/**
 * The delegation link a redeemed grant appends to the child's context: the parent as its certificate and
 * context show it, the binding it signed and its signature. Built and re-proven in one place for a grant of
 * this trust domain and a foreign one alike, so the CA never vouches for a link the parent did not sign.
 */
import { GrantBindingInvalidError } from '../../errors';
import { verifyDelegationLinkSignature } from '../../x509/agent-context/delegation-signature';
import type { AgentContext, DelegationBinding, DelegationLink } from '../../x509/agent-context/types';
import type { ParsedCertificate } from '../../x509/certificate';

export interface ParentOfGrant {
  spiffeId: string;
  cert: ParsedCertificate;
  context: AgentContext;
  /** The parent's own chain (leaf first), carried in the link when the parent is of another trust domain. */
  chain?: Uint8Array[];
}

/** The link, or GrantBindingInvalidError when the parent's signature over the binding does not verify. */
export function signedParentLink(
  parent: ParentOfGrant,
  binding: DelegationBinding,
  signature: Uint8Array,
  what: string,
): DelegationLink {
  const link: DelegationLink = {
    spiffeId: parent.spiffeId,
    agentId: parent.context.agentId,
    sessionId: parent.context.sessionId,
    scopes: [...parent.context.scopes],
    notAfter: parent.cert.notAfter,
    certSha256: parent.cert.sha256,
    publicKey: parent.cert.spkiDer,
    binding,
    signature: new Uint8Array(signature),
    ...(parent.chain !== undefined && { parentChain: parent.chain }),
  };
  if (!verifyDelegationLinkSignature(link)) {
    throw new GrantBindingInvalidError(`${what}: the parent's signature over the binding does not verify`);
  }
  return link;
}
