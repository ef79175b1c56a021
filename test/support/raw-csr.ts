/** PKCS#10 requests built by hand, for the tests of what parseCsr (and the CA, which runs it) refuses. */
import { sign, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import {
  AlgorithmIdentifier,
  Attribute,
  AttributeTypeAndValue,
  AttributeValue,
  Extension,
  Extensions,
  GeneralName,
  id_ce_subjectAltName,
  Name,
  RelativeDistinguishedName,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509';
import { spkiDer } from '../../src/x509/keys';

export interface RawCsrOptions {
  /** Signature algorithm OID written into the request. */
  oid: string;
  /** Digest node:crypto signs with (null for Ed25519). */
  hash: string | null;
  /** undefined omits AlgorithmIdentifier parameters, null writes NULL. */
  params?: null;
  subjectCn?: string;
}

/**
 * A CSR built by hand, so that tests can make requests createCsr refuses to make: unaccepted keys,
 * mismatched or unusual algorithms.
 */
export function rawCsr(privateKey: KeyObject, o: RawCsrOptions): Uint8Array {
  const info = new CertificationRequestInfo({
    version: 0,
    subject: subjectName(o.subjectCn),
    subjectPKInfo: AsnConvert.parse(spkiDer(privateKey), SubjectPublicKeyInfo),
    attributes: new Attributes(),
  });
  const alg = new AlgorithmIdentifier({ algorithm: o.oid });
  if (o.params === null) alg.parameters = null;
  return signedCsr(info, privateKey, o.hash, alg);
}

export interface HostileCsrOptions {
  /** The SubjectPublicKeyInfo the request names (default `signer`'s own). */
  spkiDer?: Uint8Array;
  /** Subject CN. */
  subjectCn?: string;
  /** URI SANs asked for in an extensionRequest attribute (PKCS#9), e.g. an ID of another trust domain. */
  uris?: string[];
}

/**
 * A CSR signed by `signer` (ECDSA with SHA-256) that may name another key than the signer's, or ask for names:
 * what a caller that wants an SVID for a key it does not hold, or for another identity, would send.
 */
export function hostileCsr(signer: KeyObject, o: HostileCsrOptions = {}): Uint8Array {
  const attributes = new Attributes();
  if (o.uris !== undefined) {
    const san = new Extension({
      extnID: id_ce_subjectAltName,
      critical: false,
      extnValue: new OctetString(
        AsnConvert.serialize(
          new SubjectAlternativeName(o.uris.map((u) => new GeneralName({ uniformResourceIdentifier: u }))),
        ),
      ),
    });
    attributes.push(
      new Attribute({
        type: '1.2.840.113549.1.9.14',
        values: [AsnConvert.serialize(new Extensions([san]))],
      }),
    );
  }
  const info = new CertificationRequestInfo({
    version: 0,
    subject: subjectName(o.subjectCn),
    subjectPKInfo: AsnConvert.parse(o.spkiDer ?? spkiDer(signer), SubjectPublicKeyInfo),
    attributes,
  });
  return signedCsr(info, signer, 'sha256', new AlgorithmIdentifier({ algorithm: '1.2.840.10045.4.3.2' }));
}

/** A subject of one CN, or an empty one. */
function subjectName(cn: string | undefined): Name {
  if (cn === undefined) return new Name([]);
  return new Name([
    new RelativeDistinguishedName([
      new AttributeTypeAndValue({ type: '2.5.4.3', value: new AttributeValue({ utf8String: cn }) }),
    ]),
  ]);
}

/** `info` signed by `signer` with `hash`, under the algorithm identifier written into the request. */
function signedCsr(
  info: CertificationRequestInfo,
  signer: KeyObject,
  hash: string | null,
  alg: AlgorithmIdentifier,
): Uint8Array {
  const signature = new Uint8Array(sign(hash, new Uint8Array(AsnConvert.serialize(info)), signer));
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: alg,
    signature: signature.buffer,
  });
  return new Uint8Array(AsnConvert.serialize(csr));
}
