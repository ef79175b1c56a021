/**
 * Structural validation of a whole AgentContext, DelegationLink or DelegationBinding value.
 * It accepts `unknown` because values also arrive from JSON (the CLI's --context file) and from the decoder;
 * it checks syntax and limits only. Chain rules (scopes narrow, expiry shrinks, roots unchanged) belong to
 * the verifier.
 */
import { ErrorCode } from '../../errors';
import {
  checkBytes,
  checkPrincipalProvenance,
  checkScopes,
  checkSha256,
  checkSpiffeId,
  checkText,
  checkTime,
  fail,
  malformed,
  requireArray,
  requireRecord,
  tooLarge,
} from './field-rules';
import {
  AGENT_CONTEXT_LIMITS as LIMITS,
  AGENT_CONTEXT_VERSION,
  AGENT_CONTEXT_VERSION_CROSS_DOMAIN,
  type AgentContext,
  type DelegationBinding,
  type DelegationLink,
} from './types';

const ID = LIMITS.maxIdLength;
const SHORT = LIMITS.maxShortStringLength;

export function assertValidDelegationBinding(
  value: unknown,
  field = 'binding',
): asserts value is DelegationBinding {
  const b = requireRecord(value, field);
  checkSha256(b.parentCertSha256, `${field}.parentCertSha256`);
  checkSpiffeId(b.childId, `${field}.childId`);
  checkSha256(b.childKeySha256, `${field}.childKeySha256`);
  checkScopes(b.scopes, `${field}.scopes`);
  checkTime(b.notAfter, `${field}.notAfter`);
  checkTime(b.redeemBy, `${field}.redeemBy`);
  checkBytes(b.nonce, `${field}.nonce`, LIMITS.minNonceBytes, LIMITS.maxNonceBytes);
  checkText(b.rootSessionId, `${field}.rootSessionId`, 1, SHORT);
  checkText(b.principalId, `${field}.principalId`, 1, ID);
  checkText(b.principalIssuer, `${field}.principalIssuer`, 1, ID);
  checkPrincipalProvenance(b.principalProvenance, `${field}.principalProvenance`);
  // Empty marks the first link; anything else must be a whole digest.
  const prev = checkBytes(b.prevLinkSha256, `${field}.prevLinkSha256`, 0, 32);
  if (prev.length !== 0 && prev.length !== 32) {
    malformed(`${field}.prevLinkSha256`, `${prev.length} bytes, expected 0 (first link) or 32`);
  }
}

export function assertValidDelegationLink(value: unknown, field = 'link'): asserts value is DelegationLink {
  const l = requireRecord(value, field);
  checkSpiffeId(l.spiffeId, `${field}.spiffeId`);
  checkText(l.agentId, `${field}.agentId`, 1, ID);
  checkText(l.sessionId, `${field}.sessionId`, 1, SHORT);
  checkScopes(l.scopes, `${field}.scopes`);
  checkTime(l.notAfter, `${field}.notAfter`);
  checkSha256(l.certSha256, `${field}.certSha256`);
  checkBytes(l.publicKey, `${field}.publicKey`, 1, LIMITS.maxPublicKeyBytes);
  assertValidDelegationBinding(l.binding, `${field}.binding`);
  checkBytes(l.signature, `${field}.signature`, 1, LIMITS.maxSignatureBytes);
  if (l.parentChain !== undefined) {
    const chain = requireArray(l.parentChain, `${field}.parentChain`);
    if (chain.length === 0) malformed(`${field}.parentChain`, 'empty (omit it instead)');
    if (chain.length > LIMITS.maxParentChainCertificates) {
      tooLarge(
        `${field}.parentChain`,
        `${chain.length} certificates, at most ${LIMITS.maxParentChainCertificates} allowed`,
      );
    }
    chain.forEach((c, i) => checkBytes(c, `${field}.parentChain[${i}]`, 1, LIMITS.maxParentCertificateBytes));
  }
}

/** Throws AgentContextError naming the first field that breaks a rule; otherwise narrows to AgentContext. */
export function assertValidAgentContext(value: unknown): asserts value is AgentContext {
  const c = requireRecord(value, 'value');
  if (c.version !== AGENT_CONTEXT_VERSION && c.version !== AGENT_CONTEXT_VERSION_CROSS_DOMAIN) {
    fail(
      ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
      'version',
      `${String(c.version)} is not supported (only ${AGENT_CONTEXT_VERSION} or ${AGENT_CONTEXT_VERSION_CROSS_DOMAIN})`,
    );
  }
  // Depth first: it bounds the work done on everything below it.
  const delegation = requireArray(c.delegation, 'delegation');
  if (delegation.length > LIMITS.maxDelegationDepth) {
    tooLarge('delegation', `${delegation.length} links, at most ${LIMITS.maxDelegationDepth} allowed`);
  }
  checkText(c.agentId, 'agentId', 1, ID);
  checkText(c.sessionId, 'sessionId', 1, SHORT);
  checkText(c.rootSessionId, 'rootSessionId', 1, SHORT);
  const p = requireRecord(c.principal, 'principal');
  checkText(p.id, 'principal.id', 1, ID);
  checkText(p.issuer, 'principal.issuer', 1, ID);
  checkPrincipalProvenance(p.provenance, 'principal.provenance');
  checkText(c.intent, 'intent', 0, LIMITS.maxIntentLength);
  checkScopes(c.scopes, 'scopes');
  checkText(c.policyVersion, 'policyVersion', 1, SHORT);
  const t = requireRecord(c.provenance, 'provenance');
  checkText(t.method, 'provenance.method', 1, SHORT);
  checkSha256(t.evidenceSha256, 'provenance.evidenceSha256');
  checkSpiffeId(t.issuer, 'provenance.issuer');
  checkTime(t.issuedAt, 'provenance.issuedAt');
  delegation.forEach((link, i) => assertValidDelegationLink(link, `delegation[${i}]`));
  // One value, one encoding: the version says whether parent chains are present, so an old reader refuses them.
  const chained = (delegation as DelegationLink[]).some((l) => l.parentChain !== undefined);
  const expected = chained ? AGENT_CONTEXT_VERSION_CROSS_DOMAIN : AGENT_CONTEXT_VERSION;
  if (c.version !== expected) {
    malformed(
      'version',
      chained
        ? `a link carries a parentChain, so the version must be ${AGENT_CONTEXT_VERSION_CROSS_DOMAIN}`
        : `no link carries a parentChain, so the version must be ${AGENT_CONTEXT_VERSION}`,
    );
  }
}
