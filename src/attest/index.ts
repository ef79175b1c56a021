/**
 * Node attestation: evidence from an agent runtime -> selectors (and, for join tokens, the bound SPIFFE ID).
 * One plugin interface (Attestor), one file per attestor, and a registry built from the server's config.
 */
export type { AttestationResult, AttestContext, Attestor, ChallengeChannel, Selector } from './attestor';
export { AttestationError } from '../errors';
export { Attestors, ATTESTOR_TYPES } from './registry';
export type { AttestorsConfig, AttestorsDeps } from './registry';
export { NO_CHALLENGES, StreamChallengeChannel } from './challenge-channel';
export { JoinTokenAttestor, JOIN_TOKEN_ATTESTOR, JOIN_TOKEN_SELECTOR_TYPE } from './join-token';
export type { JoinTokenStore } from './join-token';
export {
  DEFAULT_K8S_LEEWAY_SECONDS,
  K8S_PSAT_ATTESTOR,
  K8S_SELECTOR_TYPE,
  K8sPsatAttestor,
} from './k8s-psat';
export type { K8sPsatClusterConfig, K8sPsatOptions } from './k8s-psat';
export {
  DEFAULT_X509POP_CHALLENGE_TIMEOUT_MS,
  X509POP_ATTESTOR,
  X509POP_SELECTOR_TYPE,
  X509PopAttestor,
} from './x509pop';
export type { X509PopOptions } from './x509pop';
export {
  answerX509PopChallenge,
  X509POP_CONTEXT,
  X509POP_NONCE_BYTES,
  x509PopSignedMessage,
} from './x509pop-challenge';
export { MAX_JWT_BYTES } from './jwt';
export { MAX_CHAIN_EVIDENCE_BYTES } from './chain-evidence';
