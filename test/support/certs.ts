/**
 * A small, permissive certificate builder for verifier tests. The production builders (src/x509/profiles.ts)
 * only emit correct profiles; negative tests need certificates that break exactly one rule (a CA without
 * keyCertSign, an unknown critical extension, a pathLen of 0, name constraints), so this one lets every field
 * be chosen. Signed with node:crypto over DER built with @peculiar/asn1-x509.
 */
import { createHash, generateKeyPairSync, KeyObject, randomBytes, sign } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import * as asn from '@peculiar/asn1-x509';
import { ParsedCertificate } from '../../src/x509/certificate';

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface Issued {
  cert: ParsedCertificate;
  key: KeyPair;
}

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
}

export const HOUR = 3600_000;
export const DAY = 24 * HOUR;
/** A fixed "now" so that validity tests do not depend on the clock. */
export const NOW = new Date('2030-01-01T00:00:00Z');

export function newKey(namedCurve: 'P-256' | 'P-384' | 'P-521' = 'P-256'): KeyPair {
  return generateKeyPairSync('ec', { namedCurve });
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

export function makeCert(spec: CertSpec): Issued {
  const { der, key } = makeCertDer(spec);
  return { cert: ParsedCertificate.fromDer(der), key };
}

/** The signed DER of the certificate makeCert would parse: for certificates the parser must refuse. */
export function makeCertDer(spec: CertSpec): { der: Uint8Array; key: KeyPair } {
  const key = spec.key ?? newKey();
  const spkiDer = key.publicKey.export({ type: 'spki', format: 'der' });
  const ski = createHash('sha1').update(spkiDer).digest();
  const signer = spec.issuer?.key ?? key;
  const issuerName = spec.issuer ? AsnConvert.parse(spec.issuer.cert.subjectDer, asn.Name) : name(spec.cn);
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
  const ECDSA_SHA256 = ECDSA_BY_HASH[hash];
  const serial = spec.serial ?? positiveSerial();
  const tbs = new asn.TBSCertificate({
    version: asn.Version.v3,
    serialNumber: serial.buffer.slice(
      serial.byteOffset,
      serial.byteOffset + serial.byteLength,
    ) as ArrayBuffer,
    signature: new asn.AlgorithmIdentifier({ algorithm: ECDSA_SHA256 }),
    issuer: issuerName,
    validity: new asn.Validity({
      notBefore: spec.notBefore ?? new Date(NOW.getTime() - DAY),
      notAfter: spec.notAfter ?? new Date(NOW.getTime() + 30 * DAY),
    }),
    subject: spec.emptySubject === true ? new asn.Name([]) : name(spec.cn),
    subjectPublicKeyInfo: AsnConvert.parse(spkiDer, asn.SubjectPublicKeyInfo),
    ...(exts.length > 0 ? { extensions: new asn.Extensions(exts) } : {}),
  });
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = sign(hash, tbsDer, signer.privateKey);
  const cert = new asn.Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: new asn.AlgorithmIdentifier({ algorithm: ECDSA_SHA256 }),
    signatureValue: signature.buffer.slice(signature.byteOffset, signature.byteOffset + signature.byteLength),
  });
  return { der: new Uint8Array(AsnConvert.serialize(cert)), key };
}

/** A root CA of trust domain `td` in the X509-SVID profile. */
export function makeRoot(td: string, spec: Partial<CertSpec> = {}): Issued {
  return makeCert({
    cn: `${td} root`,
    basicConstraints: { ca: true },
    keyUsage: ['keyCertSign', 'cRLSign'],
    uris: [`spiffe://${td}`],
    ...spec,
  });
}

/** An intermediate CA of trust domain `td`. */
export function makeIntermediate(td: string, issuer: Issued, spec: Partial<CertSpec> = {}): Issued {
  return makeCert({
    cn: `${td} intermediate`,
    issuer,
    basicConstraints: { ca: true },
    keyUsage: ['keyCertSign', 'cRLSign'],
    uris: [`spiffe://${td}`],
    ...spec,
  });
}

/** An X509-SVID leaf for `id`. */
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

function name(cn: string): asn.Name {
  return new asn.Name([
    new asn.RelativeDistinguishedName([
      new asn.AttributeTypeAndValue({ type: '2.5.4.3', value: new asn.AttributeValue({ utf8String: cn }) }),
    ]),
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
