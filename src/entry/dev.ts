/**
 * `lanyard/dev`: a CA for development and tests, without a server: create or load one on disk, mint
 * X509-SVIDs (with an agent context when asked) and write them as PEM files. The certificate builders
 * underneath are here too, for test PKIs (roots, intermediates, SVIDs with any profile).
 */
export { devCaBundle, initDevCa, loadDevCa, mintSvid, writeSvidFiles } from '../ca/dev-ca';
export type { DevCa, InitDevCaOptions, LoadDevCaOptions, MintSvidOptions, SvidFiles } from '../ca/dev-ca';
export { createIntermediateCa, createRootCa, issueX509Svid } from '../x509/profiles';
export type {
  CaOptions,
  CaSubject,
  IntermediateCaOptions,
  IssuedCertificate,
  Issuer,
  RootCaOptions,
  SvidOptions,
} from '../x509/profiles';
export { generateSigningKeyPair } from '../x509/keys';
export type { KeyAlgorithm } from '../x509/keys';
