/**
 * A test-only path to certificates that carry the agent context under an OID the production writer refuses
 * (a sub-identifier of 2^28 or more: the retired 2.25 UUID OID, arcs of 2^28 and 2^31). They prove that the
 * refusal is needed, that peers really reject such certificates, and that a verifier names an old OID it finds.
 * The OID is encoded here, with arbitrary-size arcs; everything else comes from the production builders, so
 * the certificate differs from a real SVID in that one OID only.
 */
import type { KeyObject } from 'node:crypto';
import { buildName, randomSerial, signCertificate } from '../../src/x509/build';
import { ParsedCertificate } from '../../src/x509/certificate';
import { concatBytes, encodeTlv, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE } from '../../src/x509/der';
import {
  authorityKeyIdExtDer,
  basicConstraintsExtDer,
  extKeyUsageExtDer,
  keyUsageExtDer,
  subjectAltNameExtDer,
  subjectKeyIdExtDer,
  subjectKeyIdOf,
} from '../../src/x509/der-extensions';
import { EKU_CLIENT_AUTH, EKU_SERVER_AUTH } from '../../src/x509/certificate';
import { spkiDer } from '../../src/x509/keys';
import type { Issued } from './pki';

/** OBJECT IDENTIFIER DER for any dotted OID, arcs of any size (BigInt base-128). */
export function oidDerAnyArc(dotted: string): Uint8Array {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  const content: number[] = [];
  for (const arc of [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)]) {
    const digits = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) digits.unshift(Number(v & 0x7fn) | 0x80);
    content.push(...digits);
  }
  return encodeTlv(TAG_OID, Uint8Array.from(content));
}

export interface RawOidSvidOptions {
  spiffeId: string;
  publicKey: KeyObject;
  issuer: Issued;
  /** Where the agent context goes: any dotted OID, written as given. */
  contextOid: string;
  /** The extension's value (an encoded agent context). */
  contextDer: Uint8Array;
  /** More non-critical extensions after it, OIDs as given. */
  more?: { oid: string; value: Uint8Array }[];
  ttlSeconds?: number;
}

function rawExtension(oid: string, value: Uint8Array): Uint8Array {
  return encodeTlv(TAG_SEQUENCE, concatBytes([oidDerAnyArc(oid), encodeTlv(TAG_OCTET_STRING, value)]));
}

/** An X509-SVID as issueX509Svid makes it (same extensions, same subject), with the context under `contextOid`. */
export function issueSvidWithRawContextOid(opts: RawOidSvidOptions): ParsedCertificate {
  const spki = spkiDer(opts.publicKey);
  const issuerKeyId = opts.issuer.cert.subjectKeyId;
  if (issuerKeyId === undefined) throw new Error('the issuer needs a subject key identifier');
  const now = Date.now();
  const der = signCertificate({
    serial: randomSerial(),
    issuer: opts.issuer.cert.subjectDer,
    subject: buildName({ organization: 'SPIFFE' }),
    notBefore: new Date(now - 10_000),
    notAfter: new Date(now + (opts.ttlSeconds ?? 3600) * 1000),
    spki,
    extensions: [
      basicConstraintsExtDer(false),
      keyUsageExtDer(['digitalSignature']),
      extKeyUsageExtDer([EKU_SERVER_AUTH, EKU_CLIENT_AUTH]),
      subjectKeyIdExtDer(subjectKeyIdOf(spki)),
      authorityKeyIdExtDer(issuerKeyId),
      subjectAltNameExtDer({ uris: [opts.spiffeId], dnsNames: [] }),
      rawExtension(opts.contextOid, opts.contextDer),
      ...(opts.more ?? []).map((e) => rawExtension(e.oid, e.value)),
    ],
    signingKey: opts.issuer.key.privateKey,
  });
  return ParsedCertificate.fromDer(der);
}
