/**
 * RedeemGrant: the child, over mTLS with its own workload SVID (so it proves what it is), turns a grant into
 * a delegated SVID. The new context keeps the principal, root session and intent, gets its own session id,
 * and appends the link built from the parent's certificate and the parent-signed binding. Its scopes are the
 * grant's, narrowed by the issuance policy when one is configured (kind "delegation"; the verifier accepts a
 * child narrower than its binding), and its policyVersion is the deciding set's ("none" without a policy).
 * Everything (checks, signing, the new session, the grant's single use) happens in one transaction.
 */
import { sameBytes } from '../../internal/bytes';
import { sha256 } from '../../internal/digest';
import {
  DelegationTooDeepError,
  GrantExpiredError,
  GrantKeyMismatchError,
  GrantReplayedError,
  GrantWrongRedeemerError,
  InvalidArgumentError,
  NotASessionError,
  RevokedError,
} from '../../errors';
import type { RedeemGrantRequest, RedeemGrantResponse } from '../../gen/lanyard/v1/session';
import { decodeDelegationBinding } from '../../x509/agent-context/codec';
import { readAgentContext } from '../../x509/agent-context/oid';
import type { AgentContext } from '../../x509/agent-context/types';
import { ParsedCertificate } from '../../x509/certificate';
import { auditedSharedTransaction } from '../audit/in-transaction';
import type { PeerCall } from '../tls/peer-svid';
import { assertLive } from '../auth/resolve-caller';
import type { SessionDeps } from './deps';
import { assertSessionQuota } from './quota';
import { newSessionId } from '../issuance/session-svid';
import { delegatedDepthLimit, openDelegatedSession, resolveSessionOpener } from './session-opening';
import { redeemForeignGrant } from './redeem-foreign-grant';
import { signedParentLink } from './parent-link';

export const DELEGATION_METHOD = 'delegation';

export async function redeemGrant(
  deps: SessionDeps,
  req: RedeemGrantRequest,
  call: PeerCall,
): Promise<RedeemGrantResponse> {
  if (req.foreignGrant !== undefined) {
    if (req.grantId !== '') {
      throw new InvalidArgumentError('give grant_id or foreign_grant, not both');
    }
    return redeemForeignGrant(deps, req.foreignGrant, req.csr, call);
  }
  // The child's own workload SVID: a session SVID (ended or not) redeems nothing.
  const opener = await resolveSessionOpener(deps, call, req.csr);
  const { now, caller, csr } = opener;
  const entry = caller.entry;

  // Its audit record commits in the same transaction.
  return auditedSharedTransaction(deps.store, async (tx): Promise<RedeemGrantResponse> => {
    const grant = await tx.getGrant(req.grantId);
    // Replay first: a used grant is reported as used, whoever presents it and whenever.
    if (grant.redeemedAt !== undefined) {
      throw new GrantReplayedError(`grant ${grant.id} was already redeemed`);
    }
    // Refused without spending the grant: a wrong caller must not be able to burn the real child's grant.
    if (grant.childSpiffeId !== caller.id) {
      throw new GrantWrongRedeemerError(
        `grant ${grant.id} is for ${grant.childSpiffeId}, not for ${caller.id}`,
      );
    }
    if (grant.redeemBy.getTime() <= now.getTime()) {
      throw new GrantExpiredError(`grant ${grant.id} had to be redeemed by ${grant.redeemBy.toISOString()}`);
    }
    const parent = await tx.getSession(grant.parentSessionId);
    assertLive(parent, now);
    const parentCert = ParsedCertificate.fromDer(grant.parentCertDer);
    if ((await tx.getRevocation('certificate', parentCert.serialHex)) !== undefined) {
      throw new RevokedError(
        `the parent certificate (serial ${parentCert.serialHex}) of grant ${grant.id} is revoked`,
      );
    }
    const binding = decodeDelegationBinding(grant.bindingDer);
    // The parent signed for this key alone; issuing for another would leave the hop vouched for by the CA only.
    if (!sameBytes(binding.childKeySha256, sha256(csr.spki))) {
      throw new GrantKeyMismatchError(
        `grant ${grant.id} is for the key the parent bound, and the CSR is for another key`,
      );
    }
    const parentContext = contextOf(parentCert, deps.ca.agentContextOid);
    const depth = parentContext.delegation.length + 1;
    if (depth > parent.depthLimit) {
      throw new DelegationTooDeepError(`a chain of ${depth} hops exceeds the limit ${parent.depthLimit}`);
    }
    // CreateGrant checked the signature already; a stored grant is still re-proven before the CA vouches for it.
    const link = signedParentLink(
      { spiffeId: parent.spiffeId, cert: parentCert, context: parentContext },
      binding,
      grant.signature,
      `grant ${grant.id}`,
    );
    await assertSessionQuota(tx, deps.limits, entry.id, now);
    const opened = await openDelegatedSession(deps, tx, opener, {
      parentContext,
      link,
      sessionId: newSessionId(),
      method: DELEGATION_METHOD,
      evidenceDer: grant.bindingDer,
      // A delegated session ends with its grant; its renewals stay within it.
      expiresAt: binding.notAfter,
      what: `grant ${grant.id}`,
      session: {
        parentSessionId: parent.id,
        depth,
        depthLimit: delegatedDepthLimit({
          depth,
          inherited: parent.depthLimit,
          entryMax: entry.maxDelegationDepth,
          // What the parent asked at CreateGrant: the child's session can grant no deeper than that.
          grantMaxDepth: grant.maxDepth,
        }),
        // Revoking the parent's SVID that signed the grant stops the session too (as does the child's).
        parentCertSerial: parentCert.serialHex,
      },
    });
    await tx.markGrantRedeemed(grant.id, now, opened.sessionId);
    return opened;
  });
}

/** The parent's context, under this server's OID (a grant made before an agent_context.oid change is refused). */
function contextOf(cert: ParsedCertificate, agentContextOid: string): AgentContext {
  const context = readAgentContext(cert, agentContextOid);
  if (context === undefined) throw new NotASessionError('the parent certificate has no agent context');
  return context;
}
