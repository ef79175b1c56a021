import { KeyObject } from 'node:crypto';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH, ParsedCertificate } from './certificate';
import {
  AgentContextTooLargeError,
  InvalidArgumentError,
  MalformedAgentContextError,
  PathLenExceededError,
  WrongTrustDomainError,
} from '../errors';
import { resolveAgentContextOid } from './agent-context/oid';
import { AGENT_CONTEXT_LIMITS, type AgentContext } from './agent-context/types';
import { buildName, randomSerial, signCertificate, wholeSeconds } from './build';
import { concatBytes, DerFramingError, readSingleTlv, TAG_SEQUENCE } from './der';
import {
  authorityKeyIdExtDer,
  basicConstraintsExtDer,
  extensionNode,
  extKeyUsageExtDer,
  keyUsageExtDer,
  KeyUsageName,
  NameConstraintsSpec,
  nameConstraintsExtDer,
  subjectAltNameExtDer,
  subjectAltNameExtNode,
  subjectKeyIdExtDer,
  subjectKeyIdExtNode,
  subjectKeyIdOf,
} from './der-extensions';
import { type DerNode, encodedNode } from './der-writer';
import { capNotAfter, checkIssuer, clampNotBefore, Issuer, issuerNameOf } from './issuer';
import { describeKey, spkiDer, type KeyDescription } from './keys';
import { checkDnsName, leafTrustDomain, trustDomainName } from './names';
import { dnsNameProblem } from './name-syntax';

/**
 * The three certificate profiles Lanyard issues: a self-signed root CA, an intermediate CA, and the
 * X.509-SVID leaf, each exactly as the SPIFFE X509-SVID standard and RFC 5280 describe them.
 */

export type { Issuer } from './issuer';
export type { NameConstraintsSpec, NameSubtreeSpec } from './der-extensions';

export interface IssuedCertificate {
  cert: ParsedCertificate;
  der: Uint8Array;
}

export interface CaSubject {
  /** Default "Lanyard". */
  organization?: string;
  /** Default "Lanyard root CA" or "Lanyard intermediate CA". */
  commonName?: string;
}

export interface CaOptions {
  /** Trust domain name (e.g. `example.org`); the CA carries `spiffe://<trustDomain>` as its URI SAN. */
  trustDomain: string;
  ttlSeconds: number;
  /** Issuance time; default now. */
  now?: Date;
  subject?: CaSubject;
  /** basicConstraints pathLenConstraint; absent means unlimited. */
  pathLen?: number;
  nameConstraints?: NameConstraintsSpec;
  /** How far notBefore is set before `now`, to absorb clock skew. Default 10. */
  backdateSeconds?: number;
}

export interface RootCaOptions extends CaOptions {
  /** The root's private key: it signs itself. */
  key: KeyObject;
}

export interface IntermediateCaOptions extends CaOptions {
  /** The intermediate's public key (a private key is accepted and only its public half is used). */
  publicKey: KeyObject;
  issuer: Issuer;
}

export interface SvidOptions {
  spiffeId: string;
  /** The workload's public key, from its CSR. */
  publicKey: KeyObject;
  issuer: Issuer;
  ttlSeconds: number;
  now?: Date;
  dnsNames?: string[];
  /** DER of the agent-context extension value (see agent-context/codec.ts); carried non-critical. */
  agentContextDer?: Uint8Array;
  /** OID of the agent-context extension (server `agent_context.oid`). Default DEFAULT_AGENT_CONTEXT_OID. */
  agentContextOid?: string;
  /** Default 10. */
  backdateSeconds?: number;
}

export const DEFAULT_BACKDATE_SECONDS = 10;
/** The leaf subject: fixed and minimal. The identity is the URI SAN, never the subject. */
export const SVID_SUBJECT_ORGANIZATION = 'SPIFFE';
const MAX_BACKDATE_SECONDS = 3600;
/** ub-organization-name and ub-common-name (RFC 5280 Appendix A). */
const MAX_DN_STRING = 64;

export function createRootCa(opts: RootCaOptions): IssuedCertificate {
  checkCaOptions(opts);
  if (opts.key?.type !== 'private') {
    throw new InvalidArgumentError('a root CA needs its private key (it signs itself)');
  }
  const { notBefore, notAfter } = validity(opts);
  const spki = spkiDer(opts.key);
  const name = caName(opts.subject, 'Lanyard root CA');
  const der = signCertificate({
    serial: randomSerial(),
    issuer: name,
    subject: name,
    notBefore,
    notAfter,
    spki,
    // RFC 5280 §4.2.1.1 lets a self-signed certificate omit the authorityKeyIdentifier.
    extensions: caExtensions(opts, subjectKeyIdOf(spki)),
    signingKey: opts.key,
  });
  return issued(der);
}

export function createIntermediateCa(opts: IntermediateCaOptions): IssuedCertificate {
  checkCaOptions(opts);
  const { now, notBefore, notAfter: requested } = validity(opts);
  const { keyId: issuerKeyId } = checkIssuer(opts.issuer, now, true);
  const parentPathLen = opts.issuer.cert.basicConstraints?.pathLen;
  if (parentPathLen !== undefined && opts.pathLen !== undefined && opts.pathLen >= parentPathLen) {
    throw new PathLenExceededError(
      `pathLen ${opts.pathLen} is not below the issuer's pathLenConstraint ${parentPathLen}`,
    );
  }
  describeKey(opts.publicKey);
  const spki = spkiDer(opts.publicKey);
  const der = signCertificate({
    serial: randomSerial(),
    issuer: issuerNameDer(opts.issuer.cert),
    subject: caName(opts.subject, 'Lanyard intermediate CA'),
    notBefore: clampNotBefore(notBefore, opts.issuer.cert),
    notAfter: capNotAfter(requested, opts.issuer.cert),
    spki,
    extensions: [...caExtensions(opts, subjectKeyIdOf(spki)), authorityKeyIdExtDer(issuerKeyId)],
    signingKey: opts.issuer.key,
  });
  return issued(der);
}

export function issueX509Svid(opts: SvidOptions): IssuedCertificate {
  return issued(signX509SvidLeaf(opts).der);
}

/**
 * An X509-SVID just signed, with the fields its signer set, known without parsing the certificate back: the
 * server needs no more than these of the leaf it answers with (what it records and stores), and a parse of it
 * cost as much as the signature.
 */
export interface SignedLeaf {
  der: Uint8Array;
  spiffeId: string;
  /** Lowercase hex without leading zeros, as ParsedCertificate.serialHex. */
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** The agent-context extension's value as signed into the leaf, when it has one. */
  agentContextDer?: Uint8Array;
  /**
   * The context agentContextDer is the encoding of, when the issuer had it (the server's issuance, which
   * validated it in encoding it): what the audit record reads, rather than a decode of the bytes just encoded.
   * Never changed once signed.
   */
  agentContext?: Readonly<AgentContext>;
}

/** The workload's key as a certificate carries it. */
export interface LeafPublicKey {
  /** SubjectPublicKeyInfo DER in node:crypto's own encoding (keys.ts spkiDer of an accepted key). */
  spki: Uint8Array;
  /** describeKey's verdict on that key: decides the keyUsage bits. */
  kind: KeyDescription['kind'];
}

export interface SvidKeyOptions extends Omit<SvidOptions, 'publicKey'> {
  /** From a KeyObject describeKey accepted: the signing pool's workers get the SPKI, not the KeyObject. */
  subjectKey: LeafPublicKey;
}

/**
 * issueX509Svid without the parse: the same checks, the same certificate bytes.
 * @param serial the certificate's serial number; a fresh random one unless a test fixes it
 */
export function signX509SvidLeaf(opts: SvidOptions, serial: Uint8Array = randomSerial()): SignedLeaf {
  return signLeaf(
    opts,
    () => ({ kind: describeKey(opts.publicKey).kind, spki: spkiDer(opts.publicKey) }),
    serial,
  );
}

/** signX509SvidLeaf for a key given as its SPKI and kind (what a signing worker holds): the same bytes. */
export function signX509SvidLeafForKey(
  opts: SvidKeyOptions,
  serial: Uint8Array = randomSerial(),
): SignedLeaf {
  return signLeaf(opts, () => opts.subjectKey, serial);
}

function signLeaf(
  opts: Omit<SvidOptions, 'publicKey'>,
  subjectKey: () => LeafPublicKey,
  serial: Uint8Array,
): SignedLeaf {
  const trustDomain = leafTrustDomain(opts.spiffeId);
  const dnsNames = opts.dnsNames ?? [];
  dnsNames.forEach(checkDnsName);
  if (new Set(dnsNames).size !== dnsNames.length) {
    throw new InvalidArgumentError('duplicate DNS name');
  }
  if (opts.agentContextDer !== undefined) checkAgentContextDer(opts.agentContextDer);
  const contextOid = resolveAgentContextOid(opts.agentContextOid);
  const { now, notBefore, notAfter: requested } = validity(opts);
  const { keyId: issuerKeyId } = checkIssuer(opts.issuer, now, false);
  const template = leafTemplateOf(opts.issuer.cert, issuerKeyId);
  const issuerTrustDomains = template.trustDomains;
  if (issuerTrustDomains.length > 0 && !issuerTrustDomains.includes(trustDomain)) {
    // A verifier looks up the bundle of the leaf's trust domain; a leaf signed by another domain's CA fails there.
    throw new WrongTrustDomainError(
      `issuer belongs to trust domain ${issuerTrustDomains.join(', ')}, not ${trustDomain}`,
    );
  }

  const key = subjectKey();
  // Nodes, written once in place into the leaf (build.ts); the template's parts are copied as they are.
  const extensions: DerNode[] = [
    // keyEncipherment only matters for RSA key transport (TLS 1.2 RSA kex); keyAgreement is never set.
    key.kind === 'rsa' ? template.fixedRsa : template.fixedSigning,
    subjectKeyIdExtNode(subjectKeyIdOf(key.spki)),
    template.authorityKeyId,
    subjectAltNameExtNode({ uris: [opts.spiffeId], dnsNames }),
  ];
  if (opts.agentContextDer !== undefined) {
    // Non-critical so that OpenSSL, Go, Envoy and nginx, which do not know it, still accept the certificate.
    extensions.push(extensionNode(contextOid, false, encodedNode(opts.agentContextDer)));
  }
  const fields = {
    serial,
    issuer: template.issuerName,
    subject: SVID_SUBJECT,
    notBefore: clampNotBefore(notBefore, opts.issuer.cert),
    notAfter: capNotAfter(requested, opts.issuer.cert),
    spki: key.spki,
    extensions,
    signingKey: opts.issuer.key,
  };
  return {
    der: signCertificate(fields),
    spiffeId: opts.spiffeId,
    serialHex: serialHex(serial),
    // Copies: either may be the issuer certificate's own Date.
    notBefore: new Date(fields.notBefore.getTime()),
    notAfter: new Date(fields.notAfter.getTime()),
    ...(opts.agentContextDer !== undefined && { agentContextDer: opts.agentContextDer }),
  };
}

/**
 * What every leaf of one issuer certificate has in common, encoded once: the issuer Name (vetted by
 * issuerNameOf), the issuer's trust domains, the authorityKeyIdentifier, and the run of fixed extensions in
 * front of the subjectKeyIdentifier (basicConstraints, keyUsage, extKeyUsage), one for RSA keys and one for
 * signing-only keys. The extensions are nodes over their encoded bytes, which the writer copies into each leaf;
 * never changed. Keyed weakly by the certificate, so a retired CA's template goes with it; checkIssuer still runs
 * on every call (expiry, key match).
 */
interface LeafTemplate {
  issuerName: Uint8Array;
  trustDomains: readonly string[];
  authorityKeyId: DerNode;
  fixedSigning: DerNode;
  fixedRsa: DerNode;
}

const leafTemplates = new WeakMap<ParsedCertificate, LeafTemplate>();

function leafTemplateOf(cert: ParsedCertificate, issuerKeyId: Uint8Array): LeafTemplate {
  let template = leafTemplates.get(cert);
  if (template === undefined) {
    const fixed = (usages: KeyUsageName[]): DerNode =>
      encodedNode(
        concatBytes([
          basicConstraintsExtDer(false),
          keyUsageExtDer(usages),
          extKeyUsageExtDer([EKU_SERVER_AUTH, EKU_CLIENT_AUTH]),
        ]),
      );
    template = {
      issuerName: issuerNameDer(cert),
      trustDomains: Object.freeze(
        cert.uriSans.filter((u) => u.startsWith('spiffe://')).map((u) => u.slice('spiffe://'.length)),
      ),
      authorityKeyId: encodedNode(authorityKeyIdExtDer(issuerKeyId)),
      fixedSigning: fixed(['digitalSignature']),
      fixedRsa: fixed(['digitalSignature', 'keyEncipherment']),
    };
    leafTemplates.set(cert, template);
  }
  return template;
}

/** The serial as ParsedCertificate.serialHex gives it: the INTEGER's magnitude in hex, no leading zeros. */
function serialHex(serial: Uint8Array): string {
  let i = 0;
  while (i < serial.length && serial[i] === 0) i++;
  if (i === serial.length) return '0';
  // Sixteen bytes by table: cheaper than a Buffer's toString, which crosses into C++ for 32 characters.
  let hex = serial[i]! < 0x10 ? HEX_DIGITS[serial[i]!]!.slice(1) : HEX_DIGITS[serial[i]!]!;
  for (i++; i < serial.length; i++) hex += HEX_DIGITS[serial[i]!]!;
  return hex;
}

const HEX_DIGITS = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

const SVID_SUBJECT = buildName({ organization: SVID_SUBJECT_ORGANIZATION });

/**
 * The issuer field: the issuing certificate's subject, byte for byte (path builders compare names).
 * issuerNameOf still vets it once per issuer certificate, refusing a subject that is not DER.
 */
function issuerNameDer(cert: ParsedCertificate): Uint8Array {
  issuerNameOf(cert);
  return cert.subjectDer;
}

function issued(der: Uint8Array): IssuedCertificate {
  return { cert: ParsedCertificate.fromDer(der), der };
}

interface ValidityInput {
  ttlSeconds: number;
  now?: Date;
  backdateSeconds?: number;
}

function validity(opts: ValidityInput): { now: Date; notBefore: Date; notAfter: Date } {
  const now = opts.now ?? new Date();
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    throw new InvalidArgumentError('`now` is not a valid date');
  }
  if (typeof opts.ttlSeconds !== 'number' || !Number.isFinite(opts.ttlSeconds) || opts.ttlSeconds < 1) {
    throw new InvalidArgumentError(`ttlSeconds must be a number >= 1, got ${opts.ttlSeconds}`);
  }
  const backdate = opts.backdateSeconds ?? DEFAULT_BACKDATE_SECONDS;
  if (!Number.isInteger(backdate) || backdate < 0 || backdate > MAX_BACKDATE_SECONDS) {
    throw new InvalidArgumentError(
      `backdateSeconds must be an integer in 0..${MAX_BACKDATE_SECONDS}, got ${backdate}`,
    );
  }
  return {
    now,
    notBefore: wholeSeconds(new Date(now.getTime() - backdate * 1000)),
    notAfter: wholeSeconds(new Date(now.getTime() + opts.ttlSeconds * 1000)),
  };
}

function checkCaOptions(opts: CaOptions): void {
  trustDomainName(opts.trustDomain);
  if (
    opts.pathLen !== undefined &&
    (!Number.isInteger(opts.pathLen) || opts.pathLen < 0 || opts.pathLen > 16)
  ) {
    throw new InvalidArgumentError(`pathLen must be an integer in 0..16, got ${opts.pathLen}`);
  }
  for (const value of [opts.subject?.organization, opts.subject?.commonName]) {
    if (value !== undefined && (value.length === 0 || value.length > MAX_DN_STRING)) {
      throw new InvalidArgumentError(`subject attributes must be 1..${MAX_DN_STRING} characters`);
    }
  }
  const subtrees = [...(opts.nameConstraints?.permitted ?? []), ...(opts.nameConstraints?.excluded ?? [])];
  if (opts.nameConstraints !== undefined && subtrees.length === 0) {
    throw new InvalidArgumentError('nameConstraints needs at least one subtree');
  }
  for (const subtree of subtrees) {
    try {
      if (subtree.kind === 'uri') {
        // A leading "." means "any host below" (RFC 5280 §4.2.1.10); the rest must be a plain host name. A URI
        // constraint names a host, which for SPIFFE IDs is the trust domain; never a whole URI.
        const host = subtree.value.startsWith('.') ? subtree.value.slice(1) : subtree.value;
        if (host.includes(':')) throw new Error('give the trust domain name, not a URI');
        trustDomainName(host);
      } else if (subtree.kind === 'dns') {
        // A dNSName base is a plain DNS name that already covers every name below it; RFC 5280 defines no
        // leading-"." form for it (verifiers refuse one: src/verify/name-constraints.ts subtreeProblem).
        const problem = dnsNameProblem(subtree.value);
        if (problem !== undefined) {
          throw new Error(
            subtree.value.startsWith('.')
              ? 'a DNS constraint has no leading "." (the name already covers its subdomains)'
              : problem,
          );
        }
      } else throw new Error(`unknown kind ${String(subtree.kind)}`);
    } catch (e) {
      throw new InvalidArgumentError(
        `bad name constraint ${String(subtree.kind)}:${subtree.value}: ${(e as Error).message}`,
      );
    }
  }
}

function caName(subject: CaSubject | undefined, defaultCommonName: string): Uint8Array {
  return buildName({
    organization: subject?.organization ?? 'Lanyard',
    commonName: subject?.commonName ?? defaultCommonName,
  });
}

function caExtensions(opts: CaOptions, subjectKeyId: Uint8Array): Uint8Array[] {
  const extensions = [
    basicConstraintsExtDer(true, opts.pathLen),
    // X509-SVID §4.3: keyCertSign is required, cRLSign allowed (Lanyard serves CRLs); digitalSignature is
    // reserved for leaves ("if and only if").
    keyUsageExtDer(['keyCertSign', 'cRLSign']),
    subjectKeyIdExtDer(subjectKeyId),
    subjectAltNameExtDer({ uris: [`spiffe://${trustDomainName(opts.trustDomain)}`] }),
  ];
  if (opts.nameConstraints !== undefined) extensions.push(nameConstraintsExtDer(opts.nameConstraints));
  return extensions;
}

/** The value must be exactly one DER SEQUENCE within the size limit; its content is the codec's business. */
function checkAgentContextDer(der: Uint8Array): void {
  if (!(der instanceof Uint8Array) || der.length === 0) {
    throw new MalformedAgentContextError('agent context is empty');
  }
  if (der.length > AGENT_CONTEXT_LIMITS.maxEncodedBytes) {
    throw new AgentContextTooLargeError(
      `agent context is ${der.length} bytes, limit ${AGENT_CONTEXT_LIMITS.maxEncodedBytes}`,
    );
  }
  try {
    if (readSingleTlv(der).tag !== TAG_SEQUENCE) throw new DerFramingError('not a SEQUENCE');
  } catch (e) {
    if (!(e instanceof DerFramingError)) throw e;
    throw new MalformedAgentContextError(`agent context is not one DER SEQUENCE: ${e.message}`);
  }
}
