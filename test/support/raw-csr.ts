/** PKCS#10 requests built by hand, for the tests of what parseCsr (and the CA, which runs it) refuses. */
import { sign, type KeyObject } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Attributes, CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import {
  AlgorithmIdentifier,
  AttributeTypeAndValue,
  AttributeValue,
  Name,
  RelativeDistinguishedName,
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
    subject: new Name(
      o.subjectCn === undefined
        ? []
        : [
            new RelativeDistinguishedName([
              new AttributeTypeAndValue({
                type: '2.5.4.3',
                value: new AttributeValue({ utf8String: o.subjectCn }),
              }),
            ]),
          ],
    ),
    subjectPKInfo: AsnConvert.parse(spkiDer(privateKey), SubjectPublicKeyInfo),
    attributes: new Attributes(),
  });
  const infoDer = new Uint8Array(AsnConvert.serialize(info));
  const signature = new Uint8Array(sign(o.hash, infoDer, privateKey));
  const alg = new AlgorithmIdentifier({ algorithm: o.oid });
  if (o.params === null) alg.parameters = null;
  const csr = new CertificationRequest({
    certificationRequestInfo: info,
    signatureAlgorithm: alg,
    signature: signature.buffer,
  });
  return new Uint8Array(AsnConvert.serialize(csr));
}
