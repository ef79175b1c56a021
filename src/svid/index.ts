/** The X.509-SVID: the one type, its go-spiffe-compatible parse/load/marshal, and the X509-SVID profile rules. */
export { loadX509Svid, parseX509Svid, parseX509SvidRaw, toX509Svid } from './x509-svid';
export type { MarshaledX509Svid, OwnSvidOptions, X509Svid } from './x509-svid';
export { checkSvidLeaf, checkSvidSigningCertificates, spiffeIdOfLeaf } from './rules';
export {
  certificatesFromConcatenatedDer,
  certificatesFromPem,
  privateKeyFromDer,
  privateKeyFromPem,
} from './encoding';
export type { PemInput } from './encoding';
export { marshalX509Svid, marshalX509SvidRaw } from './marshal';
