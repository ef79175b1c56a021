import { createHash, createPublicKey, KeyObject, verify, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { MalformedCertificateError } from '../errors';
import * as der from './der';
import * as certificateDer from './certificate-der';
import type {
  AlgorithmIdentifierParts,
  CertificateFields,
  CertificateOutline,
  GeneralName,
  KeyUsageBits,
  ParsedExtension,
  ParsedNameConstraints,
} from './certificate-der';
import * as derExtensions from './der-extensions';
import { isUncompressedPointOnCurve } from './ec-point';
import { describeKey, type KeyDescription } from './keys';

// Read once at load: under tsx (which `npm run bench` and the tests run) an imported binding is a getter call
// on every use, and these run for every new leaf (see certificate-der.ts). Compiled output (dist/) is the same.
const { TAG_OID, TAG_SEQUENCE } = der;
const {
  DER_NULL,
  DER_P256,
  DER_P384,
  OID_EC_PUBLIC_KEY,
  OID_ED25519,
  OID_RSA_ENCRYPTION,
  OID_SUBJECT_KEY_ID,
  nameAttributeStrings,
  parseCertificateDer,
  readCertificateOutline,
  readSubjectPublicKeyInfo,
} = certificateDer;
const { readTlv } = der;
const { subjectKeyIdOf } = derExtensions;

export type {
  GeneralName,
  KeyUsageBits,
  NameSubtree,
  ParsedExtension,
  ParsedNameConstraints,
} from './certificate-der';

/** OIDs for EKU purposes used by the SVID profile. */
export const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** id-at-commonName. */
export const OID_COMMON_NAME = '2.5.4.3';

interface SignatureScheme {
  /** Digest for node:crypto verify; null for Ed25519 (pure EdDSA). */
  hash: string | null;
  keyType: 'ec' | 'rsa' | 'ed25519';
  /** RSA PKCS#1 v1.5 identifiers carry an explicit NULL (RFC 4055); ECDSA and Ed25519 none (RFC 5758, 8410). */
  nullParams: boolean;
}

/**
 * Signature algorithms whose signatures isSignedBy checks itself, with node:crypto over the tbsCertificate
 * bytes: the ones the path validator accepts (src/verify/path-rules.ts). Anything else (SHA-1, MD5, RSASSA-PSS,
 * Ed448, odd parameters) is handed to OpenSSL's X509_verify exactly as before, so that the path validator can
 * still refuse it by name (ERR_UNSUPPORTED_ALGORITHM) rather than as an unexplained bad signature.
 */
const SIGNATURE_SCHEMES: Readonly<Record<string, SignatureScheme>> = {
  '1.2.840.10045.4.3.2': { hash: 'sha256', keyType: 'ec', nullParams: false },
  '1.2.840.10045.4.3.3': { hash: 'sha384', keyType: 'ec', nullParams: false },
  '1.2.840.10045.4.3.4': { hash: 'sha512', keyType: 'ec', nullParams: false },
  '1.2.840.113549.1.1.11': { hash: 'sha256', keyType: 'rsa', nullParams: true },
  '1.2.840.113549.1.1.12': { hash: 'sha384', keyType: 'rsa', nullParams: true },
  '1.2.840.113549.1.1.13': { hash: 'sha512', keyType: 'rsa', nullParams: true },
  [OID_ED25519]: { hash: null, keyType: 'ed25519', nullParams: false },
};

/** Set by ParsedCertificate's and CertificateTemplate's static blocks: their private parts, for the renewal path. */
let construct: (
  der: Uint8Array,
  f: CertificateFields,
  check: SignatureScheme | 'mismatch' | 'openssl',
  keyDescription: KeyDescription | undefined,
) => ParsedCertificate;

let renewFrom: (
  template: CertificateTemplate,
  der: Uint8Array,
  o: CertificateOutline,
) => ParsedCertificate | undefined;

/**
 * One certificate, decoded once into the fields that path validation and the SVID rules read.
 * Parsing is strict: anything that is not a well-formed DER X.509 v3 (or v1) certificate throws MalformedInputError
 * (ERR_MALFORMED_CERTIFICATE). The DER is walked once (certificate-der.ts); OpenSSL is involved only on demand:
 * `publicKey`, signature checks (node:crypto over the tbsCertificate bytes), and the `node` view.
 */
export class ParsedCertificate {
  readonly der: Uint8Array;
  /**
   * 3, or 1 for a certificate without the version field: no extensions, so no basicConstraints. Path validation
   * accepts a v1 certificate only as a trust anchor (see src/verify/path-rules.ts).
   */
  readonly version: 1 | 3;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly subjectDer: Uint8Array;
  readonly issuerDer: Uint8Array;
  readonly subjectKeyId?: Uint8Array;
  readonly authorityKeyId?: Uint8Array;
  /** undefined when the extension is absent. */
  readonly basicConstraints?: { ca: boolean; pathLen?: number };
  readonly keyUsage?: KeyUsageBits;
  /** Key purpose OIDs, dotted decimal. */
  readonly extKeyUsage?: string[];
  readonly uriSans: string[];
  readonly dnsSans: string[];
  /** Count of SAN entries of any kind (an SVID must have exactly one, a URI). */
  readonly sanCount: number;
  /** Every subjectAltName entry of every kind, in order (empty without the extension). */
  readonly subjectAltNames: readonly GeneralName[];
  readonly nameConstraints?: ParsedNameConstraints;
  /** Every extension in certificate order; OIDs in dotted decimal, exact for arcs of any size. */
  readonly extensions: ParsedExtension[];
  readonly spkiDer: Uint8Array;
  readonly selfIssued: boolean;
  /** The certificate's signatureAlgorithm OID, dotted decimal (e.g. 1.2.840.10045.4.3.2 for ECDSA SHA-256). */
  readonly signatureAlgorithmOid: string;

  readonly #tbs: Uint8Array;
  readonly #signature: Uint8Array;
  /** How isSignedBy checks: 'mismatch' (never verifies), a scheme node:crypto checks, or OpenSSL's X509_verify. */
  readonly #signatureCheck: SignatureScheme | 'mismatch' | 'openssl';
  readonly #spkiAlgorithm: AlgorithmIdentifierParts;
  readonly #spkiKey: Uint8Array;
  #publicKey: KeyObject | undefined;
  #node: X509Certificate | undefined;
  /** The issuer of the last signature check done with node:crypto (see isSignedBy). */
  #cryptoCheckedWith: ParsedCertificate | undefined;
  /** The last issuer whose key did not verify this certificate's signature (see isSignedBy). */
  #refusedBy: ParsedCertificate | undefined;
  #nodeUnavailable = false;
  #asn: Certificate | undefined;
  #subjectCommonNames: readonly string[] | undefined;
  #sha256: Uint8Array | undefined;
  #keyDescription: KeyDescription | undefined;
  #sha256Hex: string | undefined;
  /** The serialNumber INTEGER's contents: a view into the private copy of the DER. */
  readonly #serial: Uint8Array;
  #serialHex: string | undefined;

  private constructor(
    der: Uint8Array,
    f: CertificateFields,
    check: SignatureScheme | 'mismatch' | 'openssl',
  ) {
    this.der = der;
    this.version = f.version;
    this.#serial = f.serial;
    this.notBefore = f.notBefore;
    this.notAfter = f.notAfter;
    this.subjectDer = f.subject;
    this.issuerDer = f.issuer;
    this.selfIssued = bytesEqual(f.subject, f.issuer);
    this.spkiDer = f.spki;
    this.subjectKeyId = f.subjectKeyId;
    this.authorityKeyId = f.authorityKeyId;
    this.basicConstraints = f.basicConstraints;
    this.keyUsage = f.keyUsage;
    this.extKeyUsage = f.extKeyUsage;
    this.uriSans = f.uriSans;
    this.dnsSans = f.dnsSans;
    this.sanCount = f.sanCount;
    this.subjectAltNames = f.subjectAltNames;
    this.nameConstraints = f.nameConstraints;
    this.extensions = f.extensions;
    this.signatureAlgorithmOid = f.signatureAlgorithm.oid;
    this.#tbs = f.tbs;
    this.#signature = f.signature;
    this.#signatureCheck = check;
    this.#spkiAlgorithm = f.spkiAlgorithm;
    this.#spkiKey = f.spkiKey;
  }

  /** Parse DER bytes (copied). Throws MalformedInputError (ERR_MALFORMED_CERTIFICATE) on anything else. */
  static fromDer(der: Uint8Array): ParsedCertificate {
    if (!(der instanceof Uint8Array) || der.length === 0) {
      throw new MalformedCertificateError('empty certificate');
    }
    const copy = new Uint8Array(der);
    let f: CertificateFields;
    try {
      f = parseCertificateDer(copy);
    } catch (e) {
      throw new MalformedCertificateError(`not a DER X.509 certificate: ${errMsg(e)}`, { cause: e });
    }
    return new ParsedCertificate(copy, f, signatureCheck(f.signatureAlgorithm, f.tbsSignatureAlgorithm));
  }

  static {
    // The renewal path below builds certificates from a template: it needs the private constructor and the
    // private key parts, and neither belongs in the public class.
    construct = (der, f, check, keyDescription) => {
      const cert = new ParsedCertificate(der, f, check);
      cert.#keyDescription = keyDescription;
      return cert;
    };
  }

  /**
   * Serial number as lower-case hex without leading zeros (at least one digit), made on first use: a new leaf
   * is verified without it (only a revocation question, the chain memo and refusal messages read it).
   */
  get serialHex(): string {
    this.#serialHex ??= serialToHex(this.#serial);
    return this.#serialHex;
  }

  /**
   * SHA-256 of the DER, on first use: the "certificate hash" in delegation links and revocation queries. A new
   * leaf under known intermediates is verified without it (path search compares bytes), so it is not computed
   * at parse time.
   */
  get sha256(): Uint8Array {
    // A copy: the kept digest is what sha256Hex (the cache's key) is made from, and a caller writing into what it
    // was handed must not change that.
    return Uint8Array.from(this.#digest());
  }

  /** sha256 as lower-case hex: the key of CA facts in the verification cache. */
  get sha256Hex(): string {
    this.#sha256Hex ??= Buffer.from(this.#digest()).toString('hex');
    return this.#sha256Hex;
  }

  #digest(): Uint8Array {
    this.#sha256 ??= createHash('sha256').update(this.der).digest();
    return this.#sha256;
  }

  /**
   * The subject public key, imported on first use: OpenSSL's SubjectPublicKeyInfo decoder costs about as much
   * as a signature check, and a leaf's key is often never needed. Parsing has already checked the shape of EC,
   * RSA and Ed25519 keys; a key OpenSSL still cannot read (an EC point off its curve, an algorithm it does not
   * know) throws MalformedInputError (ERR_MALFORMED_CERTIFICATE) here.
   */
  get publicKey(): KeyObject {
    this.#publicKey ??= importPublicKey(this.spkiDer, this.#spkiAlgorithm, this.#spkiKey, this.isCa);
    return this.#publicKey;
  }

  /**
   * The key's type, as describeKey gives it, for the path rules. A leaf's P-256/P-384 key with an uncompressed
   * point is described from its SPKI and checked on its curve without importing it (ec-point.ts): the verifier
   * never uses that key, and the import alone cost more than the one signature a renewed leaf needs. Any other
   * key is imported (CA keys verify signatures anyway; RSA and Ed25519 imports are cheap).
   * @throws MalformedCertificateError for a point off its curve; UnsupportedKeyError as describeKey.
   */
  describeKey(): KeyDescription {
    // A CA's key is described on every path through it: the answer is kept (a refusal is not).
    this.#keyDescription ??= Object.freeze(this.#describeKey());
    return this.#keyDescription;
  }

  #describeKey(): KeyDescription {
    if (this.#publicKey === undefined && !this.isCa && this.#spkiAlgorithm.oid === OID_EC_PUBLIC_KEY) {
      const params = this.#spkiAlgorithm.params;
      const curve =
        params === undefined
          ? undefined
          : bytesEqual(params, DER_P256)
            ? 'P-256'
            : bytesEqual(params, DER_P384)
              ? 'P-384'
              : undefined;
      if (curve !== undefined && this.#spkiKey[0] === 0x04) {
        if (!onCurve(curve, this.#spkiKey)) {
          throw new MalformedCertificateError(
            `the certificate's public key (algorithm ${OID_EC_PUBLIC_KEY}) cannot be read: the point is not on ${curve}`,
          );
        }
        return { kind: 'ec', curve };
      }
    }
    return describeKey(this.publicKey);
  }

  /**
   * node:crypto's view of the certificate (OpenSSL), built on first use: for its text forms (`subject`,
   * `issuer`, ...) and the few signature algorithms isSignedBy leaves to OpenSSL.
   */
  get node(): X509Certificate {
    if (this.#node === undefined) {
      try {
        this.#node = new X509Certificate(this.der);
      } catch (e) {
        throw new MalformedCertificateError(`OpenSSL cannot read the certificate: ${errMsg(e)}`, {
          cause: e,
        });
      }
    }
    return this.#node;
  }

  /** The node view for signature checks: undefined, and never tried again, when OpenSSL cannot build it. */
  #opensslView(): X509Certificate | undefined {
    if (this.#node === undefined && !this.#nodeUnavailable) {
      try {
        this.#node = new X509Certificate(this.der);
      } catch {
        this.#nodeUnavailable = true;
      }
    }
    return this.#node;
  }

  /**
   * The whole certificate decoded with @peculiar/asn1-x509, on first use. Costs about 0.5 ms, more than
   * everything else here together, so hot paths read the fields above instead (the signature algorithm is
   * `signatureAlgorithmOid`, the subject's DER `subjectDer`).
   */
  get asn(): Certificate {
    if (this.#asn === undefined) {
      try {
        this.#asn = AsnConvert.parse(this.der, Certificate);
      } catch (e) {
        throw new MalformedCertificateError(`the schema decoder cannot read the certificate: ${errMsg(e)}`, {
          cause: e,
        });
      }
    }
    return this.#asn;
  }

  /**
   * The text of every commonName attribute of the subject, in order (string types only; see
   * nameAttributeStrings), read from `subjectDer` on first use: no schema decoder involved.
   */
  get subjectCommonNames(): readonly string[] {
    this.#subjectCommonNames ??= Object.freeze(nameAttributeStrings(this.subjectDer, OID_COMMON_NAME));
    return this.#subjectCommonNames;
  }

  /**
   * How an EC key names its curve (RFC 3279 ECParameters): 'named' (an OID), 'implicit' (NULL) or 'specified'
   * (explicit parameters); undefined for other key types. RFC 5480 §2.1.1 allows only named curves in PKIX.
   */
  get ecCurveEncoding(): 'named' | 'implicit' | 'specified' | undefined {
    if (this.#spkiAlgorithm.oid !== OID_EC_PUBLIC_KEY) return undefined;
    const tag = this.#spkiAlgorithm.params?.[0];
    if (tag === TAG_OID) return 'named';
    return tag === TAG_SEQUENCE ? 'specified' : 'implicit';
  }

  get isCa(): boolean {
    return this.basicConstraints?.ca === true;
  }

  extension(oid: string): ParsedExtension | undefined {
    // A loop, not find(): the path rules ask this several times per certificate, and a closure per call is
    // garbage (and, under tsx, a name definition) on every new leaf.
    const exts = this.extensions;
    for (let i = 0; i < exts.length; i++) if (exts[i]!.oid === oid) return exts[i];
    return undefined;
  }

  /**
   * True when `issuer`'s key verifies this certificate's signature (a signature check only, via OpenSSL).
   * False, as OpenSSL's X509_verify has it, when the signatureAlgorithm differs from the one inside the
   * tbsCertificate (RFC 5280 §4.1.1.2), or when the key cannot verify at all.
   */
  isSignedBy(issuer: ParsedCertificate): boolean {
    // A refusal is remembered for that issuer object (whose key, once read, never changes): a renewal whose
    // signature failed on the renewal path is then refused by the full path's path search without a second
    // check (src/verify/renewals.ts). Only a refusal is kept, so this never accepts anything a check would not.
    if (issuer === this.#refusedBy) return false;
    if (this.#signedBy(issuer)) return true;
    this.#refusedBy = issuer;
    return false;
  }

  #signedBy(issuer: ParsedCertificate): boolean {
    const check = this.#signatureCheck;
    if (check === 'mismatch') return false;
    try {
      const key = issuer.publicKey;
      if (check === 'openssl' || key.asymmetricKeyType !== check.keyType) return this.node.verify(key);
      // A first check goes through node:crypto, which needs nothing built. A certificate checked again under
      // the same issuer (a cached peer SVID, verified on every connection) gets OpenSSL's own view, built once
      // (~0.2 ms), whose X509_verify skips node:crypto's per-call set-up: some 7% of a P-256 check, every time.
      if (this.#node !== undefined || this.#cryptoCheckedWith === issuer) {
        const view = this.#opensslView();
        if (view !== undefined) return view.verify(key);
      }
      this.#cryptoCheckedWith = issuer;
      return verify(check.hash, this.#tbs, key, this.#signature);
    } catch {
      return false;
    }
  }
}

/**
 * A leaf that passed parseCertificateDer, kept so that its renewals need not be parsed whole (renewedCertificate).
 * Holds two private copies of its DER: one parsed, whose decoded text and numbers (frozen) every renewal shares
 * and whose byte arrays every renewal gets again as views of its own copy, and one that presented bytes are
 * compared with, reachable from nothing handed out, so that no caller can change what a renewal is compared with
 * or what another renewal shows.
 *
 * A renewal may change its key. A leaf whose subjectKeyIdentifier is derived from its key (RFC 7093 §2 method 1,
 * subjectKeyIdOf: what Lanyard's issuance writes) then differs from the template in that identifier too, and only
 * there: for such a template, a renewal with another key is compared byte for byte but for the identifier's 20
 * octets, which must be exactly subjectKeyIdOf of the renewal's own key (computed and compared). Every other
 * byte of the extension (its position, criticality and lengths) is compared as the rest. A template whose
 * identifier is anything else (or that has none) gets no such exception.
 */
export class CertificateTemplate {
  readonly #fields: CertificateFields;
  readonly #check: SignatureScheme | 'mismatch' | 'openssl';
  /** A Buffer over a private ArrayBuffer of its own (not the pool's): compared with, never handed out. */
  readonly #compare: Buffer;
  readonly #outline: CertificateOutline;
  /** The template's key as describeKey gives it, for the renewals that keep that key. */
  readonly #keyDescription: KeyDescription;
  /**
   * When the identifier is derived from the key: its octets' offset from the end of the key (the start of the
   * tail compared), and its extension's value's, and that extension's index in the decoded list. -1 otherwise.
   */
  readonly #keyIdAt: number = -1;
  /** The parsed copy the shared fields are views of: a renewal hands out views of its own copy instead. */
  readonly #parsed: Uint8Array;

  /** @throws MalformedCertificateError when `der` is not a v3 certificate parseCertificateDer accepts. */
  constructor(der: Uint8Array) {
    let f: CertificateFields;
    const parsed = new Uint8Array(der);
    try {
      f = parseCertificateDer(parsed);
      const copy = new Uint8Array(der);
      this.#compare = Buffer.from(copy.buffer, copy.byteOffset, copy.byteLength);
      this.#outline = readCertificateOutline(this.#compare);
    } catch (e) {
      throw new MalformedCertificateError(`not a DER X.509 certificate: ${errMsg(e)}`, { cause: e });
    }
    if (f.version !== 3) throw new MalformedCertificateError('only a v3 certificate is a template');
    this.#parsed = parsed;
    this.#fields = freezeShared(f);
    this.#check = signatureCheck(f.signatureAlgorithm, f.tbsSignatureAlgorithm);
    // Described as a certificate with these fields would be: the same SPKI bytes give the same answer.
    this.#keyDescription = Object.freeze(construct(parsed, f, this.#check, undefined).describeKey());
    const o = this.#outline;
    if (o.keyIdStart >= 0) {
      const k = f.extensions.findIndex((e) => e.oid === OID_SUBJECT_KEY_ID);
      const derived = subjectKeyIdOf(f.spki);
      if (k >= 0 && sameSpan(this.#compare, o.keyIdStart, o.keyIdEnd, derived, 0, derived.length)) {
        this.#keyIdAt = o.keyIdStart - o.spkiEnd;
      }
    }
  }

  static {
    renewFrom = (template, der, o) => template.#renewal(der, o);
  }

  /**
   * The certificate `der` (outlined by readCertificateOutline) when it equals this template in everything but
   * its serial number, validity, key and signature (and, with another key, a key identifier derived from it: see
   * the class); undefined otherwise. Equal bytes parse to equal fields, and the fields that differ are read by
   * parseCertificateDer's own readers, so the result is the ParsedCertificate fromDer would give (a different key
   * is read and checked as fromDer does; a key it refuses gives undefined).
   */
  #renewal(der: Uint8Array, o: CertificateOutline): ParsedCertificate | undefined {
    const t = this.#compare;
    const to = this.#outline;
    if (
      !sameSpan(t, to.versionStart, to.versionEnd, der, o.versionStart, o.versionEnd) ||
      !sameSpan(t, to.tbsSignatureStart, to.tbsSignatureEnd, der, o.tbsSignatureStart, o.tbsSignatureEnd) ||
      !sameSpan(t, to.issuerStart, to.issuerEnd, der, o.issuerStart, o.issuerEnd) ||
      !sameSpan(t, to.subjectStart, to.subjectEnd, der, o.subjectStart, o.subjectEnd) ||
      !sameSpan(
        t,
        to.signatureAlgorithmStart,
        to.signatureAlgorithmEnd,
        der,
        o.signatureAlgorithmStart,
        o.signatureAlgorithmEnd,
      )
    ) {
      return undefined;
    }
    const sameKey = sameSpan(t, to.spkiStart, to.spkiEnd, der, o.spkiStart, o.spkiEnd);
    // With the key kept, or without a derived identifier, the whole tail is compared.
    const at = sameKey ? -1 : this.#keyIdAt;
    if (at < 0) {
      if (!sameSpan(t, to.spkiEnd, to.tbsEnd, der, o.spkiEnd, o.tbsEnd)) return undefined;
    } else {
      // The same length, then every byte but the identifier's octets, which sit at the same offset.
      const n = to.keyIdEnd - to.keyIdStart;
      if (to.tbsEnd - to.spkiEnd !== o.tbsEnd - o.spkiEnd) return undefined;
      if (!sameSpan(t, to.spkiEnd, to.keyIdStart, der, o.spkiEnd, o.spkiEnd + at)) return undefined;
      if (!sameSpan(t, to.keyIdEnd, to.tbsEnd, der, o.spkiEnd + at + n, o.tbsEnd)) return undefined;
    }
    // The presented bytes are the caller's: the certificate keeps its own copy, as fromDer does.
    const copy = new Uint8Array(der);
    const f = this.#fields;
    let spki: Uint8Array;
    let spkiAlgorithm = f.spkiAlgorithm;
    let spkiKey: Uint8Array;
    let newKeyId: Uint8Array | undefined;
    if (sameKey) {
      spki = this.#rebase(f.spki, copy, o, true);
      spkiKey = this.#rebase(f.spkiKey, copy, o, true);
    } else {
      try {
        ({ spki, spkiAlgorithm, spkiKey } = readSubjectPublicKeyInfo(
          copy,
          readTlv(copy, o.spkiStart, o.tbsEnd),
        ));
      } catch {
        return undefined;
      }
      if (at >= 0) {
        // The identifier the leaf carries must be the one its key gives, exactly.
        const from = o.spkiEnd + at;
        const derived = subjectKeyIdOf(spki);
        if (!sameSpan(copy, from, from + derived.length, derived, 0, derived.length)) return undefined;
        newKeyId = copy.slice(from, from + derived.length);
      }
    }
    // Every byte array handed out is a view of this renewal's own copy, never of the template's: a caller
    // writing into one changes this certificate's DER (which every cache compares), not the fields other
    // renewals show or are judged by. With a new key, the identifier's view holds the new octets.
    // No closure over these four: a function made per renewal is garbage, and under tsx a name definition too.
    const shared = f.extensions;
    const list = new Array<ParsedExtension>(shared.length);
    for (let i = 0; i < shared.length; i++) {
      const e = shared[i]!;
      list[i] = { oid: e.oid, critical: e.critical, value: this.#rebase(e.value, copy, o, sameKey) };
    }
    const extensions = Object.freeze(list) as ParsedExtension[];
    const subjectKeyId =
      newKeyId ?? (f.subjectKeyId === undefined ? undefined : this.#rebase(f.subjectKeyId, copy, o, sameKey));
    return construct(
      copy,
      {
        version: 3,
        tbs: copy.subarray(o.tbsStart, o.tbsEnd),
        signatureAlgorithm: f.signatureAlgorithm,
        tbsSignatureAlgorithm: f.tbsSignatureAlgorithm,
        signature: copy.subarray(o.signatureStart, o.signatureEnd),
        serial: copy.subarray(o.serialStart, o.serialEnd),
        notBefore: o.notBefore,
        notAfter: o.notAfter,
        issuer: this.#rebase(f.issuer, copy, o, sameKey),
        subject: this.#rebase(f.subject, copy, o, sameKey),
        spki,
        spkiAlgorithm,
        spkiKey,
        extensions,
        basicConstraints: f.basicConstraints,
        keyUsage: f.keyUsage,
        extKeyUsage: f.extKeyUsage,
        uriSans: f.uriSans,
        dnsSans: f.dnsSans,
        sanCount: f.sanCount,
        subjectAltNames: this.#rebaseNames(f.subjectAltNames, copy, o, sameKey),
        subjectKeyId,
        authorityKeyId:
          f.authorityKeyId === undefined ? undefined : this.#rebase(f.authorityKeyId, copy, o, sameKey),
        nameConstraints:
          f.nameConstraints === undefined
            ? undefined
            : {
                permitted: this.#rebaseNames(f.nameConstraints.permitted, copy, o, sameKey),
                excluded: this.#rebaseNames(f.nameConstraints.excluded, copy, o, sameKey),
              },
      },
      this.#check,
      sameKey ? this.#keyDescription : undefined,
    );
  }

  /**
   * The view of a renewal's `copy` holding what `v`, a view of the template's parsed copy, holds. Only spans
   * compared equal (or, with a new key, equal but for the identifier the key gives) are mapped, each to the
   * renewal's offsets of the same element. A field the parser copied out (the key identifiers, the bytes of an
   * IP or directory name) gets a copy of its own: its bytes were compared equal.
   */
  #rebase(v: Uint8Array, copy: Uint8Array, o: CertificateOutline, sameKey: boolean): Uint8Array {
    if (v.buffer !== this.#parsed.buffer) return v.slice();
    const x = v.byteOffset - this.#parsed.byteOffset;
    const end = x + v.byteLength;
    const to = this.#outline;
    let r = -1;
    if (x >= to.spkiEnd && end <= to.tbsEnd) r = o.spkiEnd + (x - to.spkiEnd);
    else if (x >= to.issuerStart && end <= to.issuerEnd) r = o.issuerStart + (x - to.issuerStart);
    else if (x >= to.subjectStart && end <= to.subjectEnd) r = o.subjectStart + (x - to.subjectStart);
    else if (sameKey && x >= to.spkiStart && end <= to.spkiEnd) r = o.spkiStart + (x - to.spkiStart);
    return r < 0 ? v.slice() : copy.subarray(r, r + v.byteLength);
  }

  /** `names` with each byte view rebased; the shared (frozen, text-only) entries, or the list, as they are. */
  #rebaseNames(
    names: readonly GeneralName[],
    copy: Uint8Array,
    o: CertificateOutline,
    sameKey: boolean,
  ): GeneralName[] {
    let any = false;
    for (let i = 0; i < names.length && !any; i++) any = names[i]!.bytes !== undefined;
    if (!any) return names as GeneralName[];
    const out = new Array<GeneralName>(names.length);
    for (let i = 0; i < names.length; i++) {
      const n = names[i]!;
      out[i] =
        n.bytes === undefined
          ? n
          : { kind: n.kind, value: n.value, bytes: this.#rebase(n.bytes, copy, o, sameKey) };
    }
    return out;
  }
}

/** See CertificateTemplate: the renewal of `template` that `der` is, or undefined. `o` is der's outline. */
export function renewedCertificate(
  template: CertificateTemplate,
  der: Uint8Array,
  o: CertificateOutline,
): ParsedCertificate | undefined {
  return renewFrom(template, der, o);
}

/**
 * The template's decoded fields are shared by every renewal handed out: what JavaScript can freeze is frozen.
 * Byte arrays cannot be: each renewal gets its own views of them (CertificateTemplate's #rebase).
 */
function freezeShared(f: CertificateFields): CertificateFields {
  for (const e of f.extensions) Object.freeze(e);
  Object.freeze(f.extensions);
  for (const n of f.subjectAltNames) Object.freeze(n);
  Object.freeze(f.subjectAltNames);
  Object.freeze(f.uriSans);
  Object.freeze(f.dnsSans);
  if (f.extKeyUsage !== undefined) Object.freeze(f.extKeyUsage);
  if (f.basicConstraints !== undefined) Object.freeze(f.basicConstraints);
  if (f.keyUsage !== undefined) Object.freeze(f.keyUsage);
  if (f.nameConstraints !== undefined) {
    for (const n of f.nameConstraints.permitted) Object.freeze(n);
    for (const n of f.nameConstraints.excluded) Object.freeze(n);
    Object.freeze(f.nameConstraints.permitted);
    Object.freeze(f.nameConstraints.excluded);
    Object.freeze(f.nameConstraints);
  }
  return f;
}

/**
 * Whether a[aStart..aEnd) and b[bStart..bEnd) hold the same bytes (names, algorithms, the extensions). A long
 * span of a Buffer (the template's copy) is compared in place, without a view made of either side.
 */
function sameSpan(
  a: Uint8Array,
  aStart: number,
  aEnd: number,
  b: Uint8Array,
  bStart: number,
  bEnd: number,
): boolean {
  const n = aEnd - aStart;
  if (n !== bEnd - bStart) return false;
  if (n > 64) {
    if (a instanceof Buffer) return a.compare(b, bStart, bEnd, aStart, aEnd) === 0;
    return Buffer.compare(a.subarray(aStart, aEnd), b.subarray(bStart, bEnd)) === 0;
  }
  for (let i = 0; i < n; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

/**
 * How a certificate's signature is checked, decided once at parse time. Inner and outer AlgorithmIdentifiers must
 * be identical (RFC 5280 §4.1.1.2; OpenSSL's X509_verify fails otherwise too). An accepted algorithm with the
 * parameters its standard prescribes is checked with node:crypto over the tbsCertificate bytes; anything else is
 * left to OpenSSL, which answers as it always did.
 */
function signatureCheck(
  outer: AlgorithmIdentifierParts,
  inner: AlgorithmIdentifierParts,
): SignatureScheme | 'mismatch' | 'openssl' {
  if (!bytesEqual(outer.der, inner.der)) return 'mismatch';
  const scheme = SIGNATURE_SCHEMES[outer.oid];
  if (scheme === undefined) return 'openssl';
  const paramsOk = scheme.nullParams
    ? outer.params !== undefined && bytesEqual(outer.params, DER_NULL)
    : outer.params === undefined;
  return paramsOk ? scheme : 'openssl';
}

/**
 * node:crypto KeyObject for the SPKI. OpenSSL 3's generic SPKI decoder costs more than a signature check
 * (~150 µs), so the common keys are imported from their parts, which yields the same key (same type, curve,
 * SPKI export; `equals` holds): RSA (rsaEncryption, NULL parameters) as PKCS#1 (~5 µs), Ed25519 as its raw 32
 * bytes (~8 µs), and a leaf's P-256 key with an uncompressed point as JWK (~80 µs, the point validated on the
 * curve). A CA's P-256 key still goes through the decoder: it is imported once per certificate object and then
 * verifies many signatures, and with a JWK-made (legacy) key those measured the same or a few percent slower.
 * Everything else goes through the decoder too, P-384 included (its JWK import is slower).
 */
function importPublicKey(
  spki: Uint8Array,
  alg: AlgorithmIdentifierParts,
  key: Uint8Array,
  isCa: boolean,
): KeyObject {
  try {
    if (alg.oid === OID_RSA_ENCRYPTION && alg.params !== undefined && bytesEqual(alg.params, DER_NULL)) {
      return createPublicKey({ key: Buffer.from(key), format: 'der', type: 'pkcs1' });
    }
    if (
      !isCa &&
      alg.oid === OID_EC_PUBLIC_KEY &&
      alg.params !== undefined &&
      bytesEqual(alg.params, DER_P256) &&
      key.length === 65 &&
      key[0] === 0x04
    ) {
      const b64 = (from: number): string => Buffer.from(key.subarray(from, from + 32)).toString('base64url');
      return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64(1), y: b64(33) }, format: 'jwk' });
    }
    if (alg.oid === OID_ED25519) {
      return createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(key).toString('base64url') },
        format: 'jwk',
      });
    }
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new MalformedCertificateError(
      `the certificate's public key (algorithm ${alg.oid}) cannot be read: ${errMsg(e)}`,
      { cause: e },
    );
  }
}

/**
 * The last point found on each curve, as a private copy. A renewed leaf often keeps its key (a delegated SVID
 * does, src/client/server-x509-source.ts), and comparing 65 or 97 bytes costs far less than the curve equation.
 * Only a point that passed is kept, so a different point, or the same point on the other curve, is checked.
 */
const lastOnCurve: { 'P-256'?: Uint8Array; 'P-384'?: Uint8Array } = {};

function onCurve(curve: 'P-256' | 'P-384', point: Uint8Array): boolean {
  const known = lastOnCurve[curve];
  if (known !== undefined && bytesEqual(known, point)) return true;
  if (!isUncompressedPointOnCurve(curve, point)) return false;
  lastOnCurve[curve] = point.slice();
  return true;
}

/** For the short fields compared here (algorithm identifiers, curve OIDs): no Buffer view is made. */
function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A view, not a copy, for the hex encoder; then without leading zeros. */
function serialToHex(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  let i = 0;
  while (i < hex.length - 1 && hex.charCodeAt(i) === 0x30) i++;
  return i === 0 ? hex : hex.slice(i);
}

function errMsg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
