import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  Extension,
  id_ce_authorityKeyIdentifier,
  KeyIdentifier,
} from '@peculiar/asn1-x509';
import { DerWriteError } from './der-writer';
import { oidWriteProblem } from './oid';

/**
 * The extensions of a CRL (src/ca/crl.ts), as schema objects for its schema-built TBSCertList. Certificates
 * take theirs as DER from der-extensions.ts: issuance is the hot path, CRL signing is not.
 */

export function authorityKeyIdExt(issuerKeyId: Uint8Array): Extension {
  return new Extension({
    extnID: id_ce_authorityKeyIdentifier,
    critical: false,
    extnValue: new OctetString(
      AsnConvert.serialize(new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(issuerKeyId) })),
    ),
  });
}

/** An extension whose value the caller already DER-encoded (the cRLNumber). Same OID rule as derOid. */
export function rawExtension(oid: string, critical: boolean, valueDer: Uint8Array): Extension {
  const problem = oidWriteProblem(oid);
  if (problem !== undefined) throw new DerWriteError(`refusing to write OID ${oid}: ${problem}`);
  return new Extension({ extnID: oid, critical, extnValue: new OctetString(valueDer) });
}
