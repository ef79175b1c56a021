/**
 * The one PKI builder of the tests. Every certificate a test needs in-process comes from here, and every
 * function speaks the same types: a certificate with its key pair is an `Issued`, a trust domain's CAs are a
 * `TrustDomainPki`, an SVID with its chain is an `Svid`, a session SVID (an SVID with an agent context) is a
 * `Hop`. Two families of builders share them:
 *
 * - `create*` / `issue*` / chains and pairs: production profiles only (src/x509/profiles.ts), agent contexts
 *   DER-encoded with the production codec, delegation links signed by the parent's own SVID key. What a real
 *   deployment would hold.
 * - `make*` (makeCert, makeRoot, makeIntermediate, makeLeaf): a permissive builder over @peculiar/asn1-x509 in
 *   which every field can be chosen, for negative tests that need a certificate breaking exactly one rule.
 *
 * Certificates made by the openssl CLI (an independent implementation) come from the companion
 * test/support/pki-openssl.ts.
 */
import { createHash, generateKeyPairSync, KeyObject, randomBytes, sign } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { X509Bundle } from '../../src/bundle';
import { TrustDomain } from '../../src/spiffe';
import { encodeAgentContext, delegationLinkSha256 } from '../../src/x509/agent-context/codec';
import { buildDelegationLink } from '../../src/x509/agent-context/delegation-signature';
import type {
  AgentContext,
  DelegationBinding,
  DelegationLink,
  Principal,
} from '../../src/x509/agent-context/types';
import { ParsedCertificate } from '../../src/x509/certificate';
import { generateSigningKeyPair, KeyAlgorithm, spkiDer } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import {
  createIntermediateCa,
  createRootCa,
  issueX509Svid,
  type Issuer,
  type IssuedCertificate,
  type NameConstraintsSpec,
} from '../../src/x509/profiles';

// ---------------------------------------------------------------------------------------------------------
// Types every builder shares

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A certificate with its key pair: a CA that can sign, or a leaf that can authenticate. */
export interface Issued {
  cert: ParsedCertificate;
  key: KeyPair;
}

export interface TrustDomainPki {
  trustDomain: string;
  root: Issued;
  /** pathLen 0: it signs SVIDs only. */
  intermediate: Issued;
  /** The trust domain's bundle: the root alone. */
  bundle: X509Bundle;
}

/** An X509-SVID with its key and the chain a workload presents. */
export interface Svid extends Issued {
  id: string;
  /** Leaf first, then the issuing intermediate when there is one: what a TLS peer sends. */
  chain: ParsedCertificate[];
  context?: AgentContext;
}

/** A session SVID: an SVID whose agent context the test knows. */
export type Hop = Svid & { context: AgentContext };

/** Anything SVIDs can be issued under: a single CA (SVIDs directly under it) or a trust domain's PKI. */
export type SvidIssuer = Issued | TrustDomainPki;

export const TD = 'example.org';
export const HOUR = 3600_000;
export const DAY = 24 * HOUR;
/** A fixed "now" so that validity tests do not depend on the clock. */
export const NOW = new Date('2030-01-01T00:00:00Z');
export const ALICE: Principal = { id: 'alice', issuer: 'https://idp.example.org', provenance: 'verified' };

/** Whole seconds: certificates and the agent context encode times without fractions. */
export function seconds(d: Date | number): Date {
  const ms = typeof d === 'number' ? d : d.getTime();
  return new Date(Math.floor(ms / 1000) * 1000);
}

/**
 * A fresh key pair. Default EC P-256. 'ec-p521' is a curve Lanyard refuses: only the permissive builder signs
 * with it, for the tests of that refusal.
 */
export function newKey(alg: KeyAlgorithm | 'ec-p521' = 'ec-p256'): KeyPair {
  return alg === 'ec-p521' ? generateKeyPairSync('ec', { namedCurve: 'P-521' }) : generateSigningKeyPair(alg);
}

/** The issuer the production profiles (src/x509/profiles.ts) take: the CA certificate and its private key. */
export function asIssuer(ca: Issued): Issuer {
  return { cert: ca.cert, key: ca.key.privateKey };
}

// ---------------------------------------------------------------------------------------------------------
// Production profiles: CAs, trust domains, SVIDs

export interface CaOptions {
  /** Key type. Default EC P-256. */
  alg?: KeyAlgorithm;
  /** Issuance time. Default now. */
  now?: Date;
  /** Lifetime. Default one day. */
  ttlSeconds?: number;
  /** Subject CN. Default "Lanyard root CA" (the production default). */
  commonName?: string;
}

/** A self-signed root CA of `trustDomain` in the production profile: SVIDs can be issued directly under it. */
export function createCa(trustDomain = TD, options: CaOptions = {}): Issued {
  const key = newKey(options.alg);
  const { cert } = createRootCa({
    trustDomain,
    key: key.privateKey,
    ttlSeconds: options.ttlSeconds ?? 24 * 3600,
    now: options.now ?? new Date(),
    ...(options.commonName !== undefined ? { subject: { commonName: options.commonName } } : {}),
  });
  return { cert, key };
}

export interface PkiOptions {
  /** Key type of the root and the intermediate. Default EC P-256. */
  alg?: KeyAlgorithm;
  /** Issuance time of both CAs. Default now. */
  now?: Date;
  /** Lifetime of both CAs. Default two days. */
  ttlSeconds?: number;
  /** Root subject CN. Default "Lanyard root CA" (the production default). */
  rootCommonName?: string;
  /** Lifetime of the intermediate alone. Default `ttlSeconds`. */
  intermediateTtlSeconds?: number;
  /** An existing root (createCa) to put the intermediate under, instead of a new one. */
  root?: Issued;
}

/** A root CA and an intermediate CA (pathLen 0) of `trustDomain`, with the bundle that trusts the root. */
export function createPki(trustDomain: string, options: PkiOptions = {}): TrustDomainPki {
  const alg = options.alg ?? 'ec-p256';
  const now = options.now ?? new Date();
  const ttlSeconds = options.ttlSeconds ?? 2 * 24 * 3600;
  const root =
    options.root ??
    createCa(trustDomain, {
      alg,
      now,
      ttlSeconds,
      ...(options.rootCommonName !== undefined ? { commonName: options.rootCommonName } : {}),
    });
  const intKey = newKey(alg);
  const intermediate = createIntermediateCa({
    trustDomain,
    publicKey: intKey.publicKey,
    issuer: asIssuer(root),
    ttlSeconds: options.intermediateTtlSeconds ?? ttlSeconds,
    now,
    pathLen: 0,
  });
  return {
    trustDomain,
    root,
    intermediate: { cert: intermediate.cert, key: intKey },
    bundle: new X509Bundle(TrustDomain.parse(trustDomain), { x509Authorities: [root.cert] }),
  };
}

export interface SvidOptions {
  /** Key type of the SVID. Default EC P-256. */
  alg?: KeyAlgorithm;
  /** Agent context to carry (DER-encoded with the production codec); absent: no extension. */
  context?: AgentContext;
  /** Default one hour. */
  ttlSeconds?: number;
  /** Issuance time. Default now. */
  now?: Date;
  /** The SVID's key pair, when the caller made it already (a delegation binding names it). */
  key?: KeyPair;
  /** OID the context is written under. Default the default OID. */
  agentContextOid?: string;
}

function isPki(issuer: SvidIssuer): issuer is TrustDomainPki {
  return 'intermediate' in issuer;
}

/** An SVID for `id`: under a trust domain PKI, issued by its intermediate; under a single CA, by that CA. */
export function issueSvid(issuer: SvidIssuer, id: string, options: SvidOptions = {}): Svid {
  const ca = isPki(issuer) ? issuer.intermediate : issuer;
  const key = options.key ?? newKey(options.alg);
  const { cert } = issueX509Svid({
    spiffeId: id,
    publicKey: key.publicKey,
    issuer: asIssuer(ca),
    ttlSeconds: options.ttlSeconds ?? 3600,
    ...(options.now !== undefined ? { now: options.now } : {}),
    ...(options.context !== undefined ? { agentContextDer: encodeAgentContext(options.context) } : {}),
    ...(options.agentContextOid !== undefined ? { agentContextOid: options.agentContextOid } : {}),
  });
  return {
    id,
    key,
    cert,
    chain: isPki(issuer) ? [cert, issuer.intermediate.cert] : [cert],
    ...(options.context !== undefined ? { context: options.context } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Agent contexts and delegation chains

/** An agent context of alice's root session with `fields` over sensible defaults. */
export function baseContext(
  fields: Partial<AgentContext> & { sessionId: string; scopes: string[] },
): AgentContext {
  return {
    version: 1,
    agentId: 'agent',
    rootSessionId: fields.sessionId,
    principal: ALICE,
    intent: 'summarise the quarterly report',
    policyVersion: 'sha256:policy-v1',
    provenance: {
      method: 'join_token',
      evidenceSha256: new Uint8Array(32).fill(7),
      issuer: `spiffe://${TD}/lanyard/server`,
      issuedAt: seconds(Date.now() - 60_000),
    },
    delegation: [],
    ...fields,
  };
}

export function sha256(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(b).digest());
}

/**
 * The link a parent hop signs when delegating to `childId` (whose key is `childPublicKey`), with `scopes` and
 * expiry `notAfter`; the parent's own last link becomes the binding's predecessor. Overrides apply to the
 * binding before signing and to the link fields around it, so a test can break one rule with a genuine
 * signature.
 */
export function delegate(
  parent: Pick<Hop, 'id' | 'key' | 'cert' | 'context'>,
  childId: string,
  childPublicKey: KeyObject,
  scopes: string[],
  notAfter: Date,
  overrides: { binding?: Partial<DelegationBinding>; link?: Partial<Omit<DelegationLink, 'binding'>> } = {},
): DelegationLink {
  const prev = parent.context.delegation[parent.context.delegation.length - 1];
  const binding: DelegationBinding = {
    parentCertSha256: parent.cert.sha256,
    childId,
    childKeySha256: sha256(spkiDer(childPublicKey)),
    scopes,
    notAfter: seconds(notAfter),
    redeemBy: seconds(Date.now() + 60_000),
    nonce: new Uint8Array(randomBytes(16)),
    rootSessionId: parent.context.rootSessionId,
    principalId: parent.context.principal.id,
    principalIssuer: parent.context.principal.issuer,
    principalProvenance: parent.context.principal.provenance,
    prevLinkSha256: prev === undefined ? new Uint8Array(0) : delegationLinkSha256(prev),
    ...overrides.binding,
  };
  const link = buildDelegationLink({
    spiffeId: parent.id,
    agentId: parent.context.agentId,
    sessionId: parent.context.sessionId,
    scopes: parent.context.scopes,
    notAfter: parent.cert.notAfter,
    certSha256: parent.cert.sha256,
    binding,
    privateKey: parent.key.privateKey,
  });
  return { ...link, ...overrides.link };
}

export interface HopSpec {
  /** The SPIFFE ID's path (`spiffe://<td>/<name>`), also the agent ID. */
  name: string;
  scopes: string[];
  ttlSeconds: number;
}

function trustDomainOf(issuer: SvidIssuer): string {
  if (isPki(issuer)) return issuer.trustDomain;
  const uri = issuer.cert.uriSans[0];
  return uri === undefined ? TD : new URL(uri).host;
}

/**
 * A chain of hops where hop i (i >= 1) is delegated from hop i-1 with exactly its scopes and its SVID's expiry,
 * each hop with its own key. Hop 0 is the root session.
 */
export function buildChain(
  issuer: SvidIssuer,
  hops: readonly HopSpec[],
  options: { alg?: KeyAlgorithm; principal?: Principal } = {},
): Hop[] {
  const out: Hop[] = [];
  const td = trustDomainOf(issuer);
  // One issuance instant for the whole chain, so a binding's expiry and its child's SVID expiry agree exactly.
  const now = seconds(Date.now());
  hops.forEach((h, i) => {
    const id = `spiffe://${td}/${h.name}`;
    const key = newKey(options.alg);
    const notAfter = new Date(now.getTime() + h.ttlSeconds * 1000);
    const parent = out[i - 1];
    const delegation = parent === undefined ? [] : [...parent.context.delegation];
    if (parent !== undefined) delegation.push(delegate(parent, id, key.publicKey, h.scopes, notAfter));
    const context = baseContext({
      agentId: h.name.split('/').pop()!,
      sessionId: `session-${h.name.split('/').pop()!}`,
      rootSessionId: parent?.context.rootSessionId ?? `session-${h.name.split('/').pop()!}`,
      scopes: h.scopes,
      delegation,
      ...(options.principal !== undefined ? { principal: options.principal } : {}),
      ...(parent !== undefined
        ? { provenance: { ...parent.context.provenance, method: 'delegation' as const } }
        : {
            provenance: {
              method: 'join_token' as const,
              evidenceSha256: new Uint8Array(32).fill(7),
              issuer: `spiffe://${td}/lanyard/server`,
              issuedAt: seconds(now.getTime() - 60_000),
            },
          }),
    });
    const svid = issueSvid(issuer, id, { key, context, ttlSeconds: h.ttlSeconds, now });
    out.push({ ...svid, context });
  });
  return out;
}

/** The standard three-level chain of the sessions issue: planner -> tool-runner -> retrieval. */
export function plannerChain(issuer: SvidIssuer): Hop[] {
  return buildChain(issuer, [
    { name: 'planner', scopes: ['docs:read', 'docs:write', 'tools:run'], ttlSeconds: 3600 },
    { name: 'tool-runner', scopes: ['docs:read', 'tools:run'], ttlSeconds: 1800 },
    { name: 'retrieval', scopes: ['docs:read'], ttlSeconds: 900 },
  ]);
}

/**
 * A new leaf for `hop` under `pki`'s intermediate, as a renewal is issued: the hop's key and agent context (or
 * another SPIFFE ID or key), 10 minutes of life.
 */
export function renewHop(
  pki: TrustDomainPki,
  hop: Hop,
  options: { spiffeId?: string; key?: KeyPair } = {},
): Uint8Array {
  return issueX509Svid({
    spiffeId: options.spiffeId ?? hop.id,
    publicKey: (options.key ?? hop.key).publicKey,
    issuer: asIssuer(pki.intermediate),
    ttlSeconds: 600,
    agentContextDer: encodeAgentContext(hop.context),
  }).cert.der;
}

export interface SessionSpec {
  /** Last path segment of the SPIFFE ID (`spiffe://<td>/agent/<name>`), also the agent ID. */
  name: string;
  scopes: string[];
  ttlSeconds: number;
}

export interface DelegatedPair {
  parent: Hop;
  child: Hop;
}

/**
 * A root session SVID (`parent`, `spiffe://<td>/agent/<name>`) and a session SVID delegated from it (`child`):
 * buildChain of two hops. Both keys are of type `alg`, so the link signature uses that key type's scheme.
 */
export function delegatedPair(
  issuer: SvidIssuer,
  parentSpec: SessionSpec,
  childSpec: SessionSpec,
  options: { alg?: KeyAlgorithm; principal?: Principal } = {},
): DelegatedPair {
  const [parent, child] = buildChain(
    issuer,
    [
      { ...parentSpec, name: `agent/${parentSpec.name}` },
      { ...childSpec, name: `agent/${childSpec.name}` },
    ],
    options,
  );
  return { parent: parent!, child: child! };
}

// ---------------------------------------------------------------------------------------------------------
// PEM

/** One PEM CERTIFICATE block. */
export function certPem(c: ParsedCertificate | Uint8Array): string {
  return encodePem('CERTIFICATE', c instanceof ParsedCertificate ? c.der : c);
}

/** Concatenated PEM CERTIFICATE blocks. */
export function certsPem(certs: readonly ParsedCertificate[]): string {
  return certs.map(certPem).join('');
}

/** The private key as PKCS#8 PEM. */
export function keyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

// ---------------------------------------------------------------------------------------------------------
// Provisioning PKI (x509pop)

export const PROVISIONING_TD = 'provisioning.example';

/** A provisioning PKI for x509pop: what a hardware vendor's CA gives a device. */
export interface ProvisioningPki {
  root: IssuedCertificate;
  inter: IssuedCertificate;
  interKey: Pick<KeyPair, 'privateKey'>;
  device: IssuedCertificate;
  deviceKey: KeyPair;
}

/**
 * The trust domain PKI of `createPki` for the provisioning domain (CAs for a day) with a SPIFFE-style device
 * certificate for `deviceId` (an hour) under its intermediate, all EC P-256.
 */
export function provisioningPki(deviceId = `spiffe://${PROVISIONING_TD}/device/gpu-node-7`): ProvisioningPki {
  const pki = createPki(PROVISIONING_TD, { ttlSeconds: 86400 });
  const device = issueSvid(pki, deviceId);
  const issued = (cert: ParsedCertificate): IssuedCertificate => ({ cert, der: cert.der });
  return {
    root: issued(pki.root.cert),
    inter: issued(pki.intermediate.cert),
    interKey: { privateKey: pki.intermediate.key.privateKey },
    device: issued(device.cert),
    deviceKey: device.key,
  };
}

/** The x509pop evidence a device presents: its certificate followed by the intermediate, as PEM. */
export function provisioningEvidencePem(pki: ProvisioningPki): string {
  return certPem(pki.device.der) + certPem(pki.inter.der);
}

/** Writes the provisioning root as a PEM CA bundle (what `attestors.x509pop.ca_bundle_file` names). */
export function writeProvisioningCaFile(pki: ProvisioningPki, file: string): string {
  fs.writeFileSync(file, certPem(pki.root.der));
  return file;
}

// ---------------------------------------------------------------------------------------------------------
// An organisation's PKI above Lanyard (ca.upstream)

export const ORG_TD = 'lanyard.local';

export interface OrgLevel {
  pathLen?: number;
  nameConstraints?: NameConstraintsSpec;
  commonName?: string;
  ttlSeconds?: number;
}

export interface OrgPkiOptions {
  /** The trust domain the CAs name. Default ORG_TD. */
  trustDomain?: string;
  /**
   * Default true: the CAs name the trust domain in a spiffe:// URI SAN, as Lanyard's own profiles do. false:
   * they carry no SAN, like a real organisation's PKI, so a bundle of the root alone names no trust domain
   * (then only `pathLen` of a level applies).
   */
  spiffeNamed?: boolean;
  /** The intermediates below the root, top first; the last one signs for Lanyard. Default one, pathLen 1. */
  levels?: readonly OrgLevel[];
  /** The root is issued a day before, the intermediates an hour before. Default now. */
  now?: Date;
  /** Mode of the signer's key file. Default 0600. */
  keyMode?: number;
}

export interface OrgPki {
  dir: string;
  root: Issued;
  /** The intermediates, the signer (the CA Lanyard's CA is issued by) first. */
  chain: ParsedCertificate[];
  signer: Issued;
  /** What ca.upstream names: the chain (signer first), the signer's key, the root as the bundle. */
  files: { certFile: string; keyFile: string; bundleFile: string };
}

/**
 * `<parent>/<name>/{int.pem,int.key,root.pem}`: a root (10 years, EC P-384) and `levels` intermediates
 * (EC P-256, a year), subject O="Example Org".
 */
export function createOrgPki(parent: string, name: string, options: OrgPkiOptions = {}): OrgPki {
  const dir = path.join(parent, name);
  fs.mkdirSync(dir, { recursive: true });
  const trustDomain = options.trustDomain ?? ORG_TD;
  const now = (options.now ?? new Date()).getTime();
  const levels = options.levels ?? [{ pathLen: 1, commonName: `${name} Workload CA` }];
  const subject = (commonName: string): { organization: string; commonName: string } => ({
    organization: 'Example Org',
    commonName,
  });
  const rootKey = newKey('ec-p384');
  const rootTtl = 10 * 365 * 86400;
  const root: Issued =
    options.spiffeNamed === false
      ? makeCert({
          cn: `${name} Root`,
          organization: 'Example Org',
          key: rootKey,
          basicConstraints: { ca: true },
          keyUsage: ['keyCertSign', 'cRLSign'],
          notBefore: new Date(now - 86400_000),
          notAfter: new Date(now - 86400_000 + rootTtl * 1000),
        })
      : {
          key: rootKey,
          cert: createRootCa({
            trustDomain,
            key: rootKey.privateKey,
            ttlSeconds: rootTtl,
            now: new Date(now - 86400_000),
            subject: subject(`${name} Root`),
          }).cert,
        };
  let issuer = root;
  const topDown: ParsedCertificate[] = [];
  levels.forEach((level, i) => {
    const key = newKey();
    const commonName = level.commonName ?? `${name} CA level ${i + 1}`;
    const ttlSeconds = level.ttlSeconds ?? 365 * 86400;
    const cert =
      options.spiffeNamed === false
        ? makeCert({
            cn: commonName,
            organization: 'Example Org',
            key,
            issuer,
            basicConstraints: {
              ca: true,
              ...(level.pathLen !== undefined ? { pathLen: level.pathLen } : {}),
            },
            keyUsage: ['keyCertSign', 'cRLSign'],
            notBefore: new Date(now - 3600_000),
            notAfter: new Date(now - 3600_000 + ttlSeconds * 1000),
          }).cert
        : createIntermediateCa({
            trustDomain,
            publicKey: key.publicKey,
            issuer: asIssuer(issuer),
            ttlSeconds,
            now: new Date(now - 3600_000),
            subject: subject(commonName),
            ...(level.pathLen !== undefined ? { pathLen: level.pathLen } : {}),
            ...(level.nameConstraints !== undefined ? { nameConstraints: level.nameConstraints } : {}),
          }).cert;
    topDown.push(cert);
    issuer = { cert, key };
  });
  const chain = topDown.reverse();
  const files = {
    certFile: path.join(dir, 'int.pem'),
    keyFile: path.join(dir, 'int.key'),
    bundleFile: path.join(dir, 'root.pem'),
  };
  fs.writeFileSync(files.certFile, certsPem(chain));
  fs.writeFileSync(files.keyFile, keyPem(issuer.key.privateKey), { mode: options.keyMode ?? 0o600 });
  fs.writeFileSync(files.bundleFile, certPem(root.cert));
  return { dir, root, chain, signer: issuer, files };
}

/** A server config file in `dir` naming the upstream files relative to itself, as a person would write it. */
export function writeUpstreamConfig(
  dir: string,
  upstream: { cert: string; key: string; bundle: string },
): string {
  const file = path.join(dir, 'server.yaml');
  fs.writeFileSync(
    file,
    [
      'listen_address: 127.0.0.1:0',
      'ca:',
      '  ttl: 24h',
      '  upstream:',
      `    cert_file: ${upstream.cert}`,
      `    key_file: ${upstream.key}`,
      `    bundle_file: ${upstream.bundle}`,
      '',
    ].join('\n'),
  );
  return file;
}

// ---------------------------------------------------------------------------------------------------------
// The permissive builder: any field, for certificates that break exactly one rule

export type KeyUsageName =
  'digitalSignature' | 'keyEncipherment' | 'keyAgreement' | 'keyCertSign' | 'cRLSign';

export interface Subtrees {
  uri?: string[];
  dns?: string[];
  /** directoryName bases, a CN each. */
  dirName?: string[];
  /** iPAddress bases in CIDR form: "10.0.0.0/8", "2001:db8::/32". */
  ip?: string[];
  /** rfc822Name bases: a mailbox, a host, or ".domain". */
  email?: string[];
  /** otherName bases: the type-id of each (the value is a UTF8String "x"). */
  otherName?: string[];
}

export interface CertSpec {
  /** Subject CN. */
  cn: string;
  /** Subject O, before the CN. Default none. */
  organization?: string;
  /** An EC key (the signature is ECDSA). Default a fresh P-256 key. */
  key?: KeyPair;
  /** Absent: self-signed. */
  issuer?: Issued;
  notBefore?: Date;
  notAfter?: Date;
  serial?: Uint8Array;
  /** null: no basicConstraints extension. */
  basicConstraints?: { ca: boolean; pathLen?: number; critical?: boolean } | null;
  /** null: no keyUsage extension. */
  keyUsage?: KeyUsageName[] | null;
  eku?: string[];
  uris?: string[];
  dns?: string[];
  /** iPAddress SANs: "192.0.2.1", "2001:db8::1". */
  ips?: string[];
  emails?: string[];
  /** otherName SANs: the type-id of each (the value is a UTF8String "x"). */
  otherNames?: string[];
  /** Default false. */
  sanCritical?: boolean;
  /** An empty subject (SEQUENCE {}) instead of CN=`cn`. */
  emptySubject?: boolean;
  /** Mark the subject and authority key identifiers critical (RFC 5280 forbids it). */
  keyIdsCritical?: boolean;
  nameConstraints?: { permitted?: Subtrees; excluded?: Subtrees };
  extra?: { oid: string; critical: boolean; value: Uint8Array }[];
  /** Default true. */
  subjectKeyId?: boolean;
  /** Override the AKI (default: the issuer's SKI). null: none. */
  authorityKeyId?: Uint8Array | null;
  /** Digest of the ECDSA signature (default sha256), to make certificates with weak signature algorithms. */
  signatureHash?: 'sha1' | 'sha256' | 'sha384';
  /** The SubjectPublicKeyInfo as given (default: `key`'s), to make keys node:crypto would never export. */
  spkiDer?: Uint8Array;
}

const ECDSA_BY_HASH = {
  sha1: '1.2.840.10045.4.1',
  sha256: '1.2.840.10045.4.3.2',
  sha384: '1.2.840.10045.4.3.3',
} as const;
const KU_BITS: Record<KeyUsageName, number> = {
  digitalSignature: asn.KeyUsageFlags.digitalSignature,
  keyEncipherment: asn.KeyUsageFlags.keyEncipherment,
  keyAgreement: asn.KeyUsageFlags.keyAgreement,
  keyCertSign: asn.KeyUsageFlags.keyCertSign,
  cRLSign: asn.KeyUsageFlags.cRLSign,
};

/**
 * What an X.509-SVID leaf for `id` carries (not a CA, digitalSignature, server and client auth, the ID as its CN and
 * only URI SAN), valid until an hour after NOW: spread into a CertSpec beside what a test varies.
 */
export function svidLeafFields(
  id: string,
): Pick<CertSpec, 'cn' | 'basicConstraints' | 'keyUsage' | 'eku' | 'uris' | 'notAfter'> {
  return {
    cn: id,
    basicConstraints: { ca: false },
    keyUsage: ['digitalSignature'],
    eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'],
    uris: [id],
    notAfter: new Date(NOW.getTime() + HOUR),
  };
}

export function makeCert(spec: CertSpec): Issued {
  const { der, key } = makeCertDer(spec);
  return { cert: ParsedCertificate.fromDer(der), key };
}

/** The signed DER of the certificate makeCert would parse: for certificates the parser must refuse. */
export function makeCertDer(spec: CertSpec): { der: Uint8Array; key: KeyPair } {
  const key = spec.key ?? newKey();
  const spki = spec.spkiDer ?? key.publicKey.export({ type: 'spki', format: 'der' });
  const ski = createHash('sha1').update(spki).digest();
  const signingKey = spec.issuer?.key ?? key;
  const subjectName = spec.emptySubject === true ? new asn.Name([]) : name(spec.cn, spec.organization);
  const issuerName = spec.issuer ? AsnConvert.parse(spec.issuer.cert.subjectDer, asn.Name) : subjectName;
  const aki =
    spec.authorityKeyId === null
      ? undefined
      : (spec.authorityKeyId ?? (spec.issuer ? spec.issuer.cert.subjectKeyId : ski));

  const exts: asn.Extension[] = [];
  const add = (oid: string, critical: boolean, value: unknown): void => {
    exts.push(
      new asn.Extension({ extnID: oid, critical, extnValue: new OctetString(AsnConvert.serialize(value)) }),
    );
  };
  if (spec.basicConstraints !== null && spec.basicConstraints !== undefined) {
    const bc = spec.basicConstraints;
    add(
      asn.id_ce_basicConstraints,
      bc.critical ?? true,
      new asn.BasicConstraints({
        cA: bc.ca,
        ...(bc.pathLen !== undefined ? { pathLenConstraint: bc.pathLen } : {}),
      }),
    );
  }
  if (spec.keyUsage !== null && spec.keyUsage !== undefined) {
    const flags = spec.keyUsage.reduce((f, u) => f | KU_BITS[u], 0);
    add(asn.id_ce_keyUsage, true, new asn.KeyUsage(flags));
  }
  if (spec.eku !== undefined) add(asn.id_ce_extKeyUsage, false, new asn.ExtendedKeyUsage(spec.eku));
  const sans = [
    ...(spec.uris ?? []).map((u) => new asn.GeneralName({ uniformResourceIdentifier: u })),
    ...(spec.dns ?? []).map((d) => new asn.GeneralName({ dNSName: d })),
    ...(spec.ips ?? []).map((ip) => new asn.GeneralName({ iPAddress: ip })),
    ...(spec.emails ?? []).map((e) => new asn.GeneralName({ rfc822Name: e })),
    ...(spec.otherNames ?? []).map(otherName),
  ];
  if (sans.length > 0) {
    add(asn.id_ce_subjectAltName, spec.sanCritical ?? false, new asn.SubjectAlternativeName(sans));
  }
  if (spec.nameConstraints !== undefined) {
    const nc = spec.nameConstraints;
    add(
      asn.id_ce_nameConstraints,
      true,
      new asn.NameConstraints({
        ...(nc.permitted ? { permittedSubtrees: subtrees(nc.permitted) } : {}),
        ...(nc.excluded ? { excludedSubtrees: subtrees(nc.excluded) } : {}),
      }),
    );
  }
  if (spec.subjectKeyId !== false)
    add(asn.id_ce_subjectKeyIdentifier, spec.keyIdsCritical ?? false, new asn.SubjectKeyIdentifier(ski));
  if (aki !== undefined) {
    add(
      asn.id_ce_authorityKeyIdentifier,
      spec.keyIdsCritical ?? false,
      new asn.AuthorityKeyIdentifier({ keyIdentifier: new asn.KeyIdentifier(aki) }),
    );
  }
  for (const e of spec.extra ?? []) {
    exts.push(
      new asn.Extension({ extnID: e.oid, critical: e.critical, extnValue: new OctetString(e.value) }),
    );
  }

  const hash = spec.signatureHash ?? 'sha256';
  const algorithm = ECDSA_BY_HASH[hash];
  const serial = spec.serial ?? positiveSerial();
  const tbs = new asn.TBSCertificate({
    version: asn.Version.v3,
    serialNumber: serial.buffer.slice(
      serial.byteOffset,
      serial.byteOffset + serial.byteLength,
    ) as ArrayBuffer,
    signature: new asn.AlgorithmIdentifier({ algorithm }),
    issuer: issuerName,
    validity: new asn.Validity({
      notBefore: spec.notBefore ?? new Date(NOW.getTime() - DAY),
      notAfter: spec.notAfter ?? new Date(NOW.getTime() + 30 * DAY),
    }),
    subject: subjectName,
    subjectPublicKeyInfo: AsnConvert.parse(spki, asn.SubjectPublicKeyInfo),
    ...(exts.length > 0 ? { extensions: new asn.Extensions(exts) } : {}),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign(hash, tbsDer, signingKey.privateKey);
  const cert = new asn.Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: new asn.AlgorithmIdentifier({ algorithm }),
    signatureValue: signature.buffer.slice(signature.byteOffset, signature.byteOffset + signature.byteLength),
  });
  return { der: new Uint8Array(AsnConvert.serialize(cert)), key };
}

/** A root CA of trust domain `td` in the X509-SVID profile, every field open to `spec`. */
export function makeRoot(td: string, spec: Partial<CertSpec> = {}): Issued {
  return makeCert({
    cn: `${td} root`,
    basicConstraints: { ca: true },
    keyUsage: ['keyCertSign', 'cRLSign'],
    uris: [`spiffe://${td}`],
    ...spec,
  });
}

/** An intermediate CA of trust domain `td`: a root's profile, issued by `issuer`. */
export function makeIntermediate(td: string, issuer: Issued, spec: Partial<CertSpec> = {}): Issued {
  return makeRoot(td, { cn: `${td} intermediate`, issuer, ...spec });
}

/** An X509-SVID leaf for `id`, every field open to `spec`. */
export function makeLeaf(id: string, issuer: Issued, spec: Partial<CertSpec> = {}): Issued {
  return makeCert({
    cn: id,
    issuer,
    basicConstraints: { ca: false },
    keyUsage: ['digitalSignature'],
    eku: [asn.id_kp_serverAuth, asn.id_kp_clientAuth],
    uris: [id],
    notAfter: new Date(NOW.getTime() + HOUR),
    ...spec,
  });
}

function name(cn: string, organization?: string): asn.Name {
  const rdn = (type: string, value: string): asn.RelativeDistinguishedName =>
    new asn.RelativeDistinguishedName([
      new asn.AttributeTypeAndValue({ type, value: new asn.AttributeValue({ utf8String: value }) }),
    ]);
  return new asn.Name([
    ...(organization !== undefined ? [rdn('2.5.4.10', organization)] : []),
    rdn('2.5.4.3', cn),
  ]);
}

function otherName(typeId: string): asn.GeneralName {
  const value = AsnConvert.serialize(new asn.DirectoryString({ utf8String: 'x' }));
  return new asn.GeneralName({ otherName: new asn.OtherName({ typeId, value }) });
}

function subtrees(s: Subtrees): asn.GeneralSubtrees {
  return new asn.GeneralSubtrees([
    ...(s.uri ?? []).map(
      (u) => new asn.GeneralSubtree({ base: new asn.GeneralName({ uniformResourceIdentifier: u }) }),
    ),
    ...(s.dns ?? []).map((d) => new asn.GeneralSubtree({ base: new asn.GeneralName({ dNSName: d }) })),
    ...(s.dirName ?? []).map(
      (cn) => new asn.GeneralSubtree({ base: new asn.GeneralName({ directoryName: name(cn) }) }),
    ),
    ...(s.ip ?? []).map((ip) => new asn.GeneralSubtree({ base: new asn.GeneralName({ iPAddress: ip }) })),
    ...(s.email ?? []).map((e) => new asn.GeneralSubtree({ base: new asn.GeneralName({ rfc822Name: e }) })),
    ...(s.otherName ?? []).map((t) => new asn.GeneralSubtree({ base: otherName(t) })),
  ]);
}

function positiveSerial(): Uint8Array {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return new Uint8Array(b);
}
