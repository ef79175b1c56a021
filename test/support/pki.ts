/**
 * PKI for the interop tests, built only with the production profiles (src/x509/profiles.ts): a root and an
 * intermediate per trust domain, SVIDs issued by the intermediate, and delegated session SVIDs whose agent
 * context carries a real delegation link signed by the parent's own SVID key (test/support/delegation.ts).
 */
import { KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import { X509Bundle } from '../../src/bundle';
import { TrustDomain } from '../../src/spiffe';
import { encodeAgentContext, type AgentContext, type Principal } from '../../src/x509/agent-context';
import { ParsedCertificate } from '../../src/x509/certificate';
import { generateSigningKeyPair, KeyAlgorithm } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import {
  createIntermediateCa,
  createRootCa,
  issueX509Svid,
  Issuer,
  type IssuedCertificate,
} from '../../src/x509/profiles';
import { baseContext, delegate, seconds } from './delegation';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface TrustDomainPki {
  trustDomain: string;
  root: Issuer;
  intermediate: Issuer;
  /** The trust domain's bundle: the root alone. */
  bundle: X509Bundle;
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
}

const TWO_DAYS = 2 * 24 * 3600;

/** A root CA and an intermediate CA (pathLen 0) of `trustDomain`, with the bundle that trusts the root. */
export function createPki(trustDomain: string, options: PkiOptions = {}): TrustDomainPki {
  const alg = options.alg ?? 'ec-p256';
  const now = options.now ?? new Date();
  const ttlSeconds = options.ttlSeconds ?? TWO_DAYS;
  const rootKey = generateSigningKeyPair(alg).privateKey;
  const root = createRootCa({
    trustDomain,
    key: rootKey,
    ttlSeconds,
    now,
    ...(options.rootCommonName !== undefined ? { subject: { commonName: options.rootCommonName } } : {}),
  });
  const intKey = generateSigningKeyPair(alg);
  const intermediate = createIntermediateCa({
    trustDomain,
    publicKey: intKey.publicKey,
    issuer: { cert: root.cert, key: rootKey },
    ttlSeconds,
    now,
    pathLen: 0,
  });
  return {
    trustDomain,
    root: { cert: root.cert, key: rootKey },
    intermediate: { cert: intermediate.cert, key: intKey.privateKey },
    bundle: new X509Bundle(TrustDomain.parse(trustDomain), { x509Authorities: [root.cert] }),
  };
}

/** An X509-SVID with its key and the chain a workload presents (the leaf, then the intermediate). */
export interface Svid {
  id: string;
  key: KeyPair;
  cert: ParsedCertificate;
  /** Leaf first, then the issuing intermediate: what a TLS peer sends. */
  chain: ParsedCertificate[];
  context?: AgentContext;
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

/** An SVID for `id` issued by the intermediate of `pki`. */
export function issueSvid(pki: TrustDomainPki, id: string, options: SvidOptions = {}): Svid {
  const key = options.key ?? generateSigningKeyPair(options.alg ?? 'ec-p256');
  const { cert } = issueX509Svid({
    spiffeId: id,
    publicKey: key.publicKey,
    issuer: pki.intermediate,
    ttlSeconds: options.ttlSeconds ?? 3600,
    ...(options.now !== undefined ? { now: options.now } : {}),
    ...(options.context !== undefined ? { agentContextDer: encodeAgentContext(options.context) } : {}),
    ...(options.agentContextOid !== undefined ? { agentContextOid: options.agentContextOid } : {}),
  });
  return {
    id,
    key,
    cert,
    chain: [cert, pki.intermediate.cert],
    ...(options.context !== undefined ? { context: options.context } : {}),
  };
}

export interface SessionSpec {
  /** Last path segment of the SPIFFE ID (`spiffe://<td>/agent/<name>`), also the agent ID. */
  name: string;
  scopes: string[];
  ttlSeconds: number;
}

export interface DelegatedPair {
  parent: Svid & { context: AgentContext };
  child: Svid & { context: AgentContext };
}

/**
 * A root session SVID (`parent`) and a session SVID delegated from it (`child`): the child's context holds one
 * delegation link, signed over the child's binding (its ID, key hash, scopes, expiry) with the parent's SVID key.
 * Both keys are of type `alg`, so the link signature uses that key type's scheme.
 */
export function delegatedPair(
  pki: TrustDomainPki,
  parentSpec: SessionSpec,
  childSpec: SessionSpec,
  options: { alg?: KeyAlgorithm; principal?: Principal } = {},
): DelegatedPair {
  const alg = options.alg ?? 'ec-p256';
  // One issuance instant in whole seconds: the binding's expiry and the child SVID's notAfter then agree exactly.
  const now = seconds(Date.now());
  const idOf = (name: string): string => `spiffe://${pki.trustDomain}/agent/${name}`;
  const principal = options.principal !== undefined ? { principal: options.principal } : {};

  const parentContext = baseContext({
    agentId: parentSpec.name,
    sessionId: `session-${parentSpec.name}`,
    scopes: parentSpec.scopes,
    ...principal,
    provenance: {
      method: 'join_token',
      evidenceSha256: new Uint8Array(32).fill(7),
      issuer: `spiffe://${pki.trustDomain}/lanyard/server`,
      issuedAt: seconds(now.getTime() - 60_000),
    },
  });
  const parentKey = generateSigningKeyPair(alg);
  const parent = issueSvid(pki, idOf(parentSpec.name), {
    key: parentKey,
    context: parentContext,
    ttlSeconds: parentSpec.ttlSeconds,
    now,
  });

  const childId = idOf(childSpec.name);
  const childKey = generateSigningKeyPair(alg);
  const link = delegate(
    { id: parent.id, key: parentKey, cert: parent.cert, context: parentContext },
    childId,
    childKey.publicKey,
    childSpec.scopes,
    new Date(now.getTime() + childSpec.ttlSeconds * 1000),
  );
  const childContext: AgentContext = {
    ...parentContext,
    agentId: childSpec.name,
    sessionId: `session-${childSpec.name}`,
    rootSessionId: parentContext.rootSessionId,
    scopes: childSpec.scopes,
    provenance: { ...parentContext.provenance, method: 'delegation' },
    delegation: [link],
  };
  const child = issueSvid(pki, childId, {
    key: childKey,
    context: childContext,
    ttlSeconds: childSpec.ttlSeconds,
    now,
  });
  return {
    parent: { ...parent, context: parentContext },
    child: { ...child, context: childContext },
  };
}

/** Concatenated PEM CERTIFICATE blocks. */
export function certsPem(certs: readonly ParsedCertificate[]): string {
  return certs.map((c) => encodePem('CERTIFICATE', c.der)).join('');
}

/** The private key as PKCS#8 PEM. */
export function keyPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }).toString();
}

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
    interKey: { privateKey: pki.intermediate.key },
    device: issued(device.cert),
    deviceKey: device.key,
  };
}

/** The x509pop evidence a device presents: its certificate followed by the intermediate, as PEM. */
export function provisioningEvidencePem(pki: ProvisioningPki): string {
  return encodePem('CERTIFICATE', pki.device.der) + encodePem('CERTIFICATE', pki.inter.der);
}

/** Writes the provisioning root as a PEM CA bundle (what `attestors.x509pop.ca_bundle_file` names). */
export function writeProvisioningCaFile(pki: ProvisioningPki, file: string): string {
  fs.writeFileSync(file, encodePem('CERTIFICATE', pki.root.der));
  return file;
}
