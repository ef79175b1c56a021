/** Certificates, CSRs, keys and the agent-context extension. */
export { ParsedCertificate, EKU_CLIENT_AUTH, EKU_SERVER_AUTH } from './certificate';
export type {
  GeneralName,
  KeyUsageBits,
  NameSubtree,
  ParsedExtension,
  ParsedNameConstraints,
} from './certificate';
export { createRootCa, createIntermediateCa, issueX509Svid, DEFAULT_BACKDATE_SECONDS } from './profiles';
export type {
  CaOptions,
  CaSubject,
  IntermediateCaOptions,
  IssuedCertificate,
  Issuer,
  NameConstraintsSpec,
  NameSubtreeSpec,
  RootCaOptions,
  SvidOptions,
} from './profiles';
export { parseCsr, createCsr, MAX_CSR_BYTES } from './csr';
export type { ParsedCsr } from './csr';
export {
  describeKey,
  generateSigningKeyPair,
  publicKeyFromSpki,
  signatureSchemeFor,
  signWithKey,
  spkiDer,
  verifyWithKey,
} from './keys';
export type { KeyAlgorithm, KeyDescription, SignatureScheme } from './keys';
export { decodePem, decodePemBlocks, encodePem } from './pem';
export type { PemBlock } from './pem';
export * from './agent-context';
