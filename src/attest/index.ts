/**
 * Node attestation: evidence from an agent runtime -> selectors (and, for join tokens, the bound SPIFFE ID).
 * One plugin interface (Attestor), one file per attestor, and a registry built from the server's config.
 * Those modules are re-exported whole; the evidence parsers lend only their size bounds.
 */
export * from './attestor';
export { AttestationError } from '../errors';
export * from './registry';
export * from './challenge-channel';
export * from './join-token';
export * from './k8s-psat';
export * from './x509pop';
export * from './x509pop-challenge';
export { MAX_JWT_BYTES } from './jwt';
export { MAX_CHAIN_EVIDENCE_BYTES } from './chain-evidence';
