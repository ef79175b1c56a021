/**
 * A verification's whole answer as one string, for comparing a fast path with a cold verification: the refusal
 * code, or everything an accepted result hands a caller (the ID, the context, and every field of every
 * certificate of the validated path). Two paths that accept with different fields (a renewal answered with its
 * template's subject, say) differ here even when both accept.
 */
import assert from 'node:assert/strict';
import type { X509BundleSource } from '../../src/bundle';
import { isLanyardError } from '../../src/errors';
import { verifyX509Svid, type VerifyX509SvidOptions, type VerifyX509SvidResult } from '../../src/verify';
import type { ParsedCertificate } from '../../src/x509/certificate';

const hex = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : Buffer.from(b).toString('hex');

function certificateFields(c: ParsedCertificate): unknown {
  let key: unknown;
  try {
    key = c.describeKey();
  } catch (e) {
    key = `refused: ${e instanceof Error ? e.message : String(e)}`;
  }
  return {
    der: hex(c.der),
    serial: c.serialHex,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    issuer: hex(c.issuerDer),
    subject: hex(c.subjectDer),
    spki: hex(c.spkiDer),
    key,
    subjectKeyId: hex(c.subjectKeyId),
    authorityKeyId: hex(c.authorityKeyId),
    extensions: c.extensions.map((e) => [e.oid, e.critical, hex(e.value)]),
    uris: [...c.uriSans],
    dns: [...c.dnsSans],
    basicConstraints: c.basicConstraints,
    keyUsage: c.keyUsage,
    extKeyUsage: c.extKeyUsage,
  };
}

/** What `result` hands a caller, as a string. */
export function resultFields(result: VerifyX509SvidResult): string {
  return JSON.stringify(
    { id: result.id.toString(), context: result.context, chain: result.chain.map(certificateFields) },
    (_k, v: unknown) => (v instanceof Uint8Array ? hex(v) : v),
  );
}

/** The refusal code, or 'accepted ' and every field of the result (resultFields). */
export function verdictOf(
  chain: readonly Uint8Array[],
  bundle: X509BundleSource,
  options: VerifyX509SvidOptions = {},
): string {
  let result: VerifyX509SvidResult;
  try {
    result = verifyX509Svid(chain, bundle, options);
  } catch (e) {
    assert.ok(isLanyardError(e), `not a typed refusal: ${e instanceof Error ? e.message : String(e)}`);
    return e.code;
  }
  return `accepted ${resultFields(result)}`;
}
