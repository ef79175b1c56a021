/**
 * The X.509-SVID (go-spiffe's x509svid.SVID): a SPIFFE ID, its certificate chain and the private key, held to
 * the X509-SVID profile wherever one is built. Every producer (the CA's dev mint, attestation and renewal, the
 * agent cache, handoff) and every consumer (X509Sources, the hop helpers) uses this one type.
 */
import { createPublicKey, KeyObject } from 'node:crypto';
import { ChainEmptyError, UnsupportedKeyError } from '../errors';
import type { SpiffeId } from '../spiffe';
import { readAgentContext, resolveAgentContextOid } from '../x509/agent-context/oid';
import type { AgentContext } from '../x509/agent-context/types';
import { ParsedCertificate } from '../x509/certificate';
import {
  certificatesFromConcatenatedDer,
  certificatesFromPem,
  type PemInput,
  privateKeyFromDer,
  privateKeyFromPem,
  readSvidFile,
} from './encoding';
import { marshalX509Svid, marshalX509SvidRaw } from './marshal';
import { checkSvidLeaf, checkSvidSigningCertificates, spiffeIdOfLeaf } from './rules';

/** The workload's own current identity. Immutable: a rotation produces a new object. */
export interface X509Svid {
  readonly id: SpiffeId;
  /** Leaf first, then intermediates up to (not including) a bundle root. */
  readonly chain: readonly ParsedCertificate[];
  /** Never leaves the process. */
  readonly privateKey: KeyObject;
  /** The agent context the SVID carries, when it carries one. */
  readonly context?: Readonly<AgentContext>;
  readonly notAfter: Date;
  /**
   * The chain as PEM CERTIFICATE blocks (leaf first) and the key as one PKCS#8 PEM block, as go-spiffe's
   * Marshal: what parseX509Svid reads back, and what svid.pem / svid_key.pem hold.
   */
  marshal(): MarshaledX509Svid<string>;
  /** DER: the certificates back to back (leaf first) and the PKCS#8 key, as go-spiffe's MarshalRaw. */
  marshalRaw(): MarshaledX509Svid<Uint8Array>;
}

/** An SVID in transferable form. `key` is the private key: write it 0600 and never log it. */
export interface MarshaledX509Svid<T> {
  readonly certificates: T;
  readonly key: T;
}

/** How the workload reads its own SVIDs. */
export interface OwnSvidOptions {
  /** OID of the agent-context extension: the issuing server's `agent_context.oid`. Default 1.3.6.1.4.1.262144.1.1. */
  agentContextOid?: string;
}

/**
 * An X509Svid from a DER chain (leaf first) and its key, held to the X509-SVID profile as go-spiffe's
 * x509svid.Parse does: the leaf by the verifier's leaf rules (one URI SAN with a SPIFFE ID, not a CA,
 * keyUsage digitalSignature without keyCertSign or cRLSign, extKeyUsage when present with serverAuth and
 * clientAuth), every other certificate a CA with keyCertSign, and the key the leaf's. A wrongly issued SVID
 * fails here, where it is loaded, rather than at every peer. Validity and the path to a bundle are not
 * checked: this is the workload's own certificate, issued to it, and its peers verify it; the agent context
 * is decoded, not verified, for the same reason.
 * @throws SvidVerificationError (ERR_SVID_INVALID) for a leaf rule, PathValidationError (ERR_NOT_A_CA,
 *   ERR_KEY_USAGE_INVALID) for a signing certificate, MalformedInputError (ERR_CHAIN_EMPTY,
 *   ERR_UNSUPPORTED_KEY) for an empty chain or a key that is not the leaf's; AgentContextOidMismatchError
 *   when the server wrote the context under another OID than `agentContextOid`.
 */
export function toX509Svid(
  chain: readonly (Uint8Array | ParsedCertificate)[],
  privateKey: KeyObject,
  options: OwnSvidOptions = {},
): X509Svid {
  const contextOid = resolveAgentContextOid(options.agentContextOid);
  if (chain.length === 0) throw new ChainEmptyError('an SVID needs a certificate');
  const certs = chain.map((c) => (c instanceof ParsedCertificate ? c : ParsedCertificate.fromDer(c)));
  const leaf = certs[0]!;
  const id = spiffeIdOfLeaf(leaf);
  checkSvidLeaf(leaf);
  checkSvidSigningCertificates(certs.slice(1));
  if (!(privateKey instanceof KeyObject) || privateKey.type !== 'private') {
    throw new UnsupportedKeyError('the SVID key must be a private key');
  }
  const pub = Buffer.from(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }));
  if (!pub.equals(Buffer.from(leaf.spkiDer))) {
    throw new UnsupportedKeyError(`the key does not belong to ${id.toString()}`);
  }
  const context = readAgentContext(leaf, contextOid);
  const frozenChain = Object.freeze(certs);
  return Object.freeze({
    id,
    chain: frozenChain,
    privateKey,
    ...(context !== undefined ? { context } : {}),
    notAfter: leaf.notAfter,
    marshal: () => marshalX509Svid(frozenChain, privateKey),
    marshalRaw: () => marshalX509SvidRaw(frozenChain, privateKey),
  });
}

/**
 * An X509Svid from PEM (go-spiffe's x509svid.Parse): every CERTIFICATE block of `certificates` (leaf first;
 * other blocks skipped, so one file may hold both) and the first private key block of `key` (PKCS#8 as
 * go-spiffe writes it, or SEC1 / PKCS#1), held to the rules of toX509Svid.
 * @throws MalformedInputError (ERR_MALFORMED_PEM, ERR_CHAIN_EMPTY, ERR_UNSUPPORTED_KEY), and the profile
 *   errors of toX509Svid.
 */
export function parseX509Svid(certificates: PemInput, key: PemInput, options: OwnSvidOptions = {}): X509Svid {
  const chain = certificatesFromPem(certificates);
  if (chain.length === 0) {
    throw new ChainEmptyError('no CERTIFICATE PEM block found: an SVID needs one');
  }
  return toX509Svid(chain, privateKeyFromPem(key), options);
}

/**
 * An X509Svid from DER (go-spiffe's x509svid.ParseRaw): the certificates back to back, leaf first, and a
 * PKCS#8 key. The same rules as parseX509Svid.
 */
export function parseX509SvidRaw(
  certificates: Uint8Array,
  key: Uint8Array,
  options: OwnSvidOptions = {},
): X509Svid {
  return toX509Svid(certificatesFromConcatenatedDer(certificates), privateKeyFromDer(key), options);
}

/**
 * parseX509Svid of two PEM files (go-spiffe's x509svid.Load); they may be the same file.
 * @throws LanyardError (ERR_IO) naming an unreadable file, and the errors of parseX509Svid.
 */
export function loadX509Svid(certFile: string, keyFile: string, options: OwnSvidOptions = {}): X509Svid {
  return parseX509Svid(readSvidFile(certFile, 'certificate'), readSvidFile(keyFile, 'key'), options);
}
