/**
 * The proof a delegation link from another trust domain carries: the parent's own SVID (`parentChain`), which the
 * verifier checks against the bundle of the parent's trust domain, never the leaf's. What that domain's CA signed
 * in it must be exactly what the link claims (SPIFFE ID, key, certificate, session, agent, scopes, expiry) and what
 * the whole chain claims up to this link (principal, root session, every earlier link byte for byte), so a CA of
 * another domain can neither invent such a link nor edit one it copied.
 */
import { ErrorCode, errorFromCode, isLanyardError, SvidVerificationError } from '../errors';
import { SpiffeId, TrustDomain } from '../spiffe';
import { ParsedCertificate } from '../x509/certificate';
import { delegationLinkSha256 } from '../x509/agent-context/codec';
import type { AgentContext, DelegationLink } from '../x509/agent-context/types';

/** A parent SVID verified as an X509-SVID of its own trust domain (path, leaf rules, its own context rules). */
export interface VerifiedParentSvid {
  id: SpiffeId;
  leaf: ParsedCertificate;
  context?: Readonly<AgentContext> | undefined;
}

/**
 * Verifies `chain` as an X509-SVID of `trustDomain` with that domain's bundle. verifyX509Svid supplies one that
 * uses the caller's bundle source, time and options; without one, no parent chain can be proven.
 * @throws BundleNotFoundError when no bundle of `trustDomain` is held (the domain is not federated).
 */
export type ParentChainVerifier = (
  chain: readonly Uint8Array[],
  trustDomain: TrustDomain,
) => VerifiedParentSvid;

/**
 * Checks link `index` of `ctx` against its parentChain.
 * @throws ContextForeignDomainError when no bundle of the parent's domain is held (or no verifier is given):
 *   nothing the parent's domain signed can be checked, so the link stays unproven.
 * @throws ParentChainInvalidError when the chain does not verify or names anything else than the link claims.
 */
export function checkParentChain(
  ctx: AgentContext,
  index: number,
  linkHashes: readonly Uint8Array[],
  verify: ParentChainVerifier | undefined,
): void {
  const link = ctx.delegation[index]!;
  const chain = link.parentChain!;
  const at = `delegation link ${index} (${link.spiffeId})`;
  const td = SpiffeId.parse(link.spiffeId).trustDomain;
  if (verify === undefined) {
    throw reject(
      ErrorCode.CONTEXT_FOREIGN_DOMAIN,
      `${at}: its parent chain can only be checked with the bundles of verifyX509Svid`,
    );
  }
  let parent: VerifiedParentSvid;
  try {
    parent = verify(chain, td);
  } catch (e) {
    if (isLanyardError(e) && e.code === ErrorCode.BUNDLE_NOT_FOUND) {
      throw reject(
        ErrorCode.CONTEXT_FOREIGN_DOMAIN,
        `${at}: no bundle of trust domain "${td.name}" is held (not federated), so nothing vouches for the link`,
        e,
      );
    }
    const code = isLanyardError(e) ? `${e.code}: ` : '';
    throw reject(
      ErrorCode.PARENT_CHAIN_INVALID,
      `${at}: the parent's SVID does not verify against the bundle of "${td.name}" (${code}${
        e instanceof Error ? e.message : String(e)
      })`,
      e,
    );
  }
  const mismatch = (what: string): SvidVerificationError =>
    reject(ErrorCode.PARENT_CHAIN_INVALID, `${at}: the parent's SVID ${what}`);

  if (parent.id.toString() !== link.spiffeId) throw mismatch(`is ${parent.id.toString()}`);
  if (!same(parent.leaf.sha256, link.certSha256)) throw mismatch('is not the certificate the link names');
  if (!same(parent.leaf.spkiDer, link.publicKey)) throw mismatch('holds another key than the link');
  if (parent.leaf.notAfter.getTime() !== link.notAfter.getTime()) {
    throw mismatch("expires at another time than the link's notAfter");
  }
  const pc = parent.context;
  if (pc === undefined) throw mismatch('carries no agent context');
  if (pc.agentId !== link.agentId || pc.sessionId !== link.sessionId) {
    throw mismatch(`is agent "${pc.agentId}" in session "${pc.sessionId}", not what the link claims`);
  }
  if (pc.scopes.length !== link.scopes.length || pc.scopes.some((s, i) => s !== link.scopes[i])) {
    throw mismatch("holds other scopes than the link's");
  }
  // The principal and root session are the parent domain's claims: its CA signed them in the parent's SVID.
  if (pc.rootSessionId !== ctx.rootSessionId) throw mismatch('belongs to another root session');
  const p = pc.principal;
  if (
    p.id !== ctx.principal.id ||
    p.issuer !== ctx.principal.issuer ||
    p.provenance !== ctx.principal.provenance
  ) {
    throw mismatch(`acts for another principal ("${p.id}", ${p.provenance})`);
  }
  // Every earlier link is the parent's own chain, as its domain signed it (and verified it, recursively).
  if (pc.delegation.length !== index) {
    throw mismatch(`has ${pc.delegation.length} links before it, the chain has ${index}`);
  }
  pc.delegation.forEach((l: DelegationLink, k) => {
    if (!same(delegationLinkSha256(l), linkHashes[k]!))
      throw mismatch(`has another link ${k} than the chain`);
  });
}

function reject(
  code: SvidVerificationError['code'],
  message: string,
  cause?: unknown,
): SvidVerificationError {
  return errorFromCode(
    code,
    `agent context: ${message}`,
    cause !== undefined ? { cause } : undefined,
  ) as SvidVerificationError;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
