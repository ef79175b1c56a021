import { createHash } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BasicConstraints,
  ExtendedKeyUsage,
  Extension,
  GeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_nameConstraints,
  id_ce_subjectAltName,
  id_ce_subjectKeyIdentifier,
  KeyIdentifier,
  KeyUsage,
  KeyUsageFlags,
  NameConstraints,
  SubjectAlternativeName,
  SubjectKeyIdentifier,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509';

/**
 * One builder per extension the profiles use. Criticality is decided by the profile that calls them,
 * so each builder takes it explicitly rather than hiding a default.
 */

function extension(oid: string, critical: boolean, value: unknown): Extension {
  return new Extension({
    extnID: oid,
    critical,
    extnValue: new OctetString(AsnConvert.serialize(value)),
  });
}

export function basicConstraintsExt(ca: boolean, pathLen?: number): Extension {
  const bc = new BasicConstraints({ cA: ca });
  if (pathLen !== undefined) bc.pathLenConstraint = pathLen;
  return extension(id_ce_basicConstraints, true, bc);
}

export type KeyUsageName = 'digitalSignature' | 'keyEncipherment' | 'keyCertSign' | 'cRLSign';

export function keyUsageExt(usages: KeyUsageName[]): Extension {
  const flags = usages.reduce((acc, u) => acc | KeyUsageFlags[u], 0);
  // BitString.fromNumber drops trailing zero bits, which is the DER rule for named bit lists.
  return extension(id_ce_keyUsage, true, new KeyUsage(flags));
}

export function extKeyUsageExt(oids: string[]): Extension {
  return extension(id_ce_extKeyUsage, false, new ExtendedKeyUsage(oids));
}

/**
 * Subject key identifier per RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 of the
 * subjectPublicKey BIT STRING value. Same length as RFC 5280's SHA-1 method, without needing SHA-1.
 */
export function computeSubjectKeyId(spki: SubjectPublicKeyInfo): Uint8Array {
  return new Uint8Array(
    createHash('sha256').update(new Uint8Array(spki.subjectPublicKey)).digest().subarray(0, 20),
  );
}

export function subjectKeyIdExt(keyId: Uint8Array): Extension {
  return extension(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(keyId));
}

export function authorityKeyIdExt(issuerKeyId: Uint8Array): Extension {
  return extension(
    id_ce_authorityKeyIdentifier,
    false,
    new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(issuerKeyId) }),
  );
}

export interface SanValues {
  uris?: string[];
  dnsNames?: string[];
}

/** Non-critical: every certificate we issue has a non-empty subject (RFC 5280 §4.2.1.6). */
export function subjectAltNameExt(values: SanValues): Extension {
  const names = [
    ...(values.uris ?? []).map((u) => new GeneralName({ uniformResourceIdentifier: u })),
    ...(values.dnsNames ?? []).map((d) => new GeneralName({ dNSName: d })),
  ];
  return extension(id_ce_subjectAltName, false, new SubjectAlternativeName(names));
}

/** A name-constraint base: a URI host (`td` matches `spiffe://td/...`) or a DNS domain. */
export interface NameSubtreeSpec {
  kind: 'uri' | 'dns';
  value: string;
}

export interface NameConstraintsSpec {
  permitted?: NameSubtreeSpec[];
  excluded?: NameSubtreeSpec[];
}

function subtrees(specs: NameSubtreeSpec[] | undefined): GeneralSubtrees | undefined {
  if (specs === undefined || specs.length === 0) return undefined;
  return new GeneralSubtrees(
    specs.map(
      (s) =>
        new GeneralSubtree({
          base: new GeneralName(
            s.kind === 'uri' ? { uniformResourceIdentifier: s.value } : { dNSName: s.value },
          ),
        }),
    ),
  );
}

/** Critical, as RFC 5280 §4.2.1.10 requires. */
export function nameConstraintsExt(spec: NameConstraintsSpec): Extension {
  const nc = new NameConstraints();
  const permitted = subtrees(spec.permitted);
  const excluded = subtrees(spec.excluded);
  if (permitted) nc.permittedSubtrees = permitted;
  if (excluded) nc.excludedSubtrees = excluded;
  return extension(id_ce_nameConstraints, true, nc);
}

/** An extension whose value the caller already DER-encoded (the agent context). */
export function rawExtension(oid: string, critical: boolean, valueDer: Uint8Array): Extension {
  return new Extension({ extnID: oid, critical, extnValue: new OctetString(valueDer) });
}
