import { createHash, KeyObject, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  Certificate,
  ExtendedKeyUsage,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  NameConstraints,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { ErrorCode, MalformedInputError } from '../errors';
import { canonicalOid } from './oid';

/** The keyUsage bits a verifier cares about, as booleans. */
export interface KeyUsageBits {
  digitalSignature: boolean;
  keyEncipherment: boolean;
  keyAgreement: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
}

export interface NameSubtree {
  kind: 'uri' | 'dns' | 'other';
  /** The base value for uri/dns (RFC 5280 §4.2.1.10 semantics), empty for other kinds. */
  value: string;
}

export interface ParsedNameConstraints {
  permitted: NameSubtree[];
  excluded: NameSubtree[];
}

export interface ParsedExtension {
  oid: string;
  critical: boolean;
  /** extnValue contents (the DER of the extension's own value). */
  value: Uint8Array;
}

/** OIDs for EKU purposes used by the SVID profile. */
export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * One certificate, decoded once into the fields that path validation and the SVID rules read.
 * Parsing is strict: anything that is not a well-formed X.509 v3 certificate throws MalformedInputError.
 * Signature checks go through node:crypto (OpenSSL), never through a JavaScript implementation.
 */
export class ParsedCertificate {
  readonly der: Uint8Array;
  readonly node: X509Certificate;
  readonly asn: Certificate;
  /** SHA-256 of the DER, lower-case hex: the cache key and the "certificate hash" in delegation links. */
  readonly sha256Hex: string;
  readonly sha256: Uint8Array;
  /** Serial number as lower-case hex without leading zeros (at least one digit). */
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectDer: Uint8Array;
  readonly issuerDer: Uint8Array;
  readonly subjectKeyId?: Uint8Array;
  readonly authorityKeyId?: Uint8Array;
  /** undefined when the extension is absent. */
  readonly basicConstraints?: { ca: boolean; pathLen?: number };
  readonly keyUsage?: KeyUsageBits;
  readonly extKeyUsage?: string[];
  readonly uriSans: string[];
  readonly dnsSans: string[];
  /** Count of SAN entries of any kind (an SVID must have exactly one, a URI). */
  readonly sanCount: number;
  readonly nameConstraints?: ParsedNameConstraints;
  readonly extensions: ParsedExtension[];
  readonly spkiDer: Uint8Array;
  readonly publicKey: KeyObject;
  readonly selfIssued: boolean;

  private constructor(der: Uint8Array) {
    this.der = der;
    let asn: Certificate;
    let node: X509Certificate;
    try {
      asn = AsnConvert.parse(der, Certificate);
      node = new X509Certificate(der);
    } catch (e) {
      throw new MalformedInputError(
        ErrorCode.MALFORMED_CERTIFICATE,
        `not a DER X.509 certificate: ${errMsg(e)}`,
        {
          cause: e,
        },
      );
    }
    this.asn = asn;
    this.node = node;
    const tbs = asn.tbsCertificate;
    if (tbs.version !== 2) {
      throw new MalformedInputError(
        ErrorCode.MALFORMED_CERTIFICATE,
        'only X.509 v3 certificates are accepted',
      );
    }
    this.sha256 = createHash('sha256').update(der).digest();
    this.sha256Hex = Buffer.from(this.sha256).toString('hex');
    this.serialHex = serialToHex(new Uint8Array(tbs.serialNumber));
    this.notBefore = tbs.validity.notBefore.getTime();
    this.notAfter = tbs.validity.notAfter.getTime();
    this.subjectDer = new Uint8Array(AsnConvert.serialize(tbs.subject));
    this.issuerDer = new Uint8Array(AsnConvert.serialize(tbs.issuer));
    this.selfIssued = Buffer.from(this.subjectDer).equals(Buffer.from(this.issuerDer));
    this.spkiDer = new Uint8Array(AsnConvert.serialize(tbs.subjectPublicKeyInfo));
    this.publicKey = node.publicKey;

    const exts: ParsedExtension[] = [];
    const seen = new Set<string>();
    let uriSans: string[] = [];
    let dnsSans: string[] = [];
    let sanCount = 0;
    for (const ext of tbs.extensions ?? []) {
      const oid = canonicalOid(ext.extnID);
      if (seen.has(oid)) {
        // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
        throw new MalformedInputError(ErrorCode.MALFORMED_CERTIFICATE, `duplicate extension ${oid}`);
      }
      seen.add(oid);
      const value = new Uint8Array(ext.extnValue.buffer);
      exts.push({ oid, critical: ext.critical, value });
      try {
        switch (ext.extnID) {
          case id_ce_basicConstraints: {
            const bc = AsnConvert.parse(value, BasicConstraints);
            (this as { basicConstraints?: { ca: boolean; pathLen?: number } }).basicConstraints = {
              ca: bc.cA,
              ...(bc.pathLenConstraint !== undefined ? { pathLen: bc.pathLenConstraint } : {}),
            };
            break;
          }
          case id_ce_keyUsage: {
            const ku = AsnConvert.parse(value, KeyUsage);
            const flags = ku.toNumber();
            (this as { keyUsage?: KeyUsageBits }).keyUsage = {
              digitalSignature: (flags & KeyUsageFlags.digitalSignature) !== 0,
              keyEncipherment: (flags & KeyUsageFlags.keyEncipherment) !== 0,
              keyAgreement: (flags & KeyUsageFlags.keyAgreement) !== 0,
              keyCertSign: (flags & KeyUsageFlags.keyCertSign) !== 0,
              cRLSign: (flags & KeyUsageFlags.cRLSign) !== 0,
            };
            break;
          }
          case id_ce_extKeyUsage: {
            const eku = AsnConvert.parse(value, ExtendedKeyUsage);
            (this as { extKeyUsage?: string[] }).extKeyUsage = Array.from(eku, (x) => String(x));
            break;
          }
          case id_ce_subjectAltName: {
            const san = AsnConvert.parse(value, SubjectAlternativeName);
            const names = Array.from(san);
            sanCount = names.length;
            uriSans = names.flatMap((g) =>
              g.uniformResourceIdentifier !== undefined ? [g.uniformResourceIdentifier] : [],
            );
            dnsSans = names.flatMap((g) => (g.dNSName !== undefined ? [g.dNSName] : []));
            break;
          }
          case id_ce_subjectKeyIdentifier: {
            const ski = AsnConvert.parse(value, SubjectKeyIdentifier);
            (this as { subjectKeyId?: Uint8Array }).subjectKeyId = new Uint8Array(ski.buffer);
            break;
          }
          case id_ce_authorityKeyIdentifier: {
            const aki = AsnConvert.parse(value, AuthorityKeyIdentifier);
            if (aki.keyIdentifier) {
              (this as { authorityKeyId?: Uint8Array }).authorityKeyId = new Uint8Array(
                aki.keyIdentifier.buffer,
              );
            }
            break;
          }
          case id_ce_nameConstraints: {
            const nc = AsnConvert.parse(value, NameConstraints);
            (this as { nameConstraints?: ParsedNameConstraints }).nameConstraints = {
              permitted: Array.from(nc.permittedSubtrees ?? [], (s) => toSubtree(s.base)),
              excluded: Array.from(nc.excludedSubtrees ?? [], (s) => toSubtree(s.base)),
            };
            break;
          }
          default:
            break;
        }
      } catch (e) {
        if (e instanceof MalformedInputError) throw e;
        throw new MalformedInputError(
          ErrorCode.MALFORMED_CERTIFICATE,
          `malformed extension ${ext.extnID}: ${errMsg(e)}`,
          { cause: e },
        );
      }
    }
    this.extensions = exts;
    this.uriSans = uriSans;
    this.dnsSans = dnsSans;
    this.sanCount = sanCount;
  }

  /** Parse DER bytes. Throws MalformedInputError (ERR_MALFORMED_CERTIFICATE) on anything else. */
  static fromDer(der: Uint8Array): ParsedCertificate {
    if (!(der instanceof Uint8Array) || der.length === 0) {
      throw new MalformedInputError(ErrorCode.MALFORMED_CERTIFICATE, 'empty certificate');
    }
    return new ParsedCertificate(new Uint8Array(der));
  }

  get isCa(): boolean {
    return this.basicConstraints?.ca === true;
  }

  extension(oid: string): ParsedExtension | undefined {
    return this.extensions.find((e) => e.oid === oid);
  }

  /** True when `issuer` signed this certificate (signature check only, via OpenSSL). */
  isSignedBy(issuer: ParsedCertificate): boolean {
    try {
      return this.node.verify(issuer.publicKey);
    } catch {
      return false;
    }
  }
}

function toSubtree(g: GeneralName): NameSubtree {
  if (g.uniformResourceIdentifier !== undefined) return { kind: 'uri', value: g.uniformResourceIdentifier };
  if (g.dNSName !== undefined) return { kind: 'dns', value: g.dNSName };
  return { kind: 'other', value: '' };
}

function serialToHex(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString('hex').replace(/^0+/, '');
  return hex === '' ? '0' : hex;
}

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
