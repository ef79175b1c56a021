/**
 * Rules for the OIDs Lanyard writes, and reading OIDs as other ASN.1 libraries print them.
 *
 * Every sub-identifier Lanyard writes stays below 2^28. Widely deployed X.509 parsers refuse a whole
 * certificate holding a larger one, whatever the extension's criticality: Go's crypto/x509 (and with it
 * go-spiffe, SPIRE and Envoy's Go control planes) any arc of 2^31 or more, Python cryptography 38 any of 2^28
 * or more. A certificate they cannot parse is a certificate those peers refuse, so the writer refuses first.
 */

/** Every sub-identifier (arc, and the packed first two arcs) Lanyard writes is below this. */
export const OID_ARC_LIMIT = 2 ** 28;

const DOTTED = /^[0-2](\.(0|[1-9][0-9]*))+$/;

/**
 * Why `dotted` is not an OID Lanyard may write, or undefined when it is: dotted decimal without leading zeros,
 * at least two arcs, the first 0, 1 or 2, the second below 40 under 0 and 1 (X.660), and every sub-identifier
 * of its encoding (each arc after the second, and 40 * first + second) below OID_ARC_LIMIT.
 */
export function oidWriteProblem(dotted: string): string | undefined {
  if (!DOTTED.test(dotted)) {
    return 'expected dotted decimal with at least two arcs, the first 0, 1 or 2, no leading zeros (e.g. 1.3.6.1.4.1.262144.1.1)';
  }
  const arcs = dotted.split('.');
  // Compared as strings first: an arc of hundreds of digits must not be parsed into a number at all.
  const tooBig = (arc: string): boolean => arc.length > 9 || Number(arc) >= OID_ARC_LIMIT;
  const first = Number(arcs[0]);
  const second = arcs[1]!;
  if (first < 2 && (second.length > 2 || Number(second) >= 40)) {
    return `the second arc under ${first} must be below 40 (X.660)`;
  }
  if (tooBig(second) || first * 40 + Number(second) >= OID_ARC_LIMIT) {
    return `the first sub-identifier (40 * ${first} + ${second}) must be below 2^28: X.509 parsers such as Go's and Python cryptography's refuse larger ones`;
  }
  const big = arcs.slice(2).find(tooBig);
  if (big !== undefined) {
    return `arc ${big.length > 24 ? `${big.slice(0, 24)}...` : big} is not below 2^28 (${OID_ARC_LIMIT}): X.509 parsers such as Go's (2^31) and Python cryptography 38's (2^28) refuse certificates holding larger arcs`;
  }
  return undefined;
}

/**
 * Dotted-decimal form of an OID as @peculiar/asn1-schema (asn1js) reports it. asn1js cannot hold an arc above
 * 2^53 in a number and renders it as "{hex}" of its base-128 digits, one byte per digit (UUID-based OIDs under
 * 2.25 always hit that). Converting back lets callers compare against the OID as written in the standards.
 * Already-decimal strings pass unchanged.
 */
export function canonicalOid(oid: string): string {
  if (!oid.includes('{')) return oid;
  return oid
    .split('.')
    .map((arc) => {
      const m = /^\{([0-9a-fA-F]+)\}$/.exec(arc);
      if (m === null) return arc;
      let value = 0n;
      for (const digit of Buffer.from(m[1]!, 'hex')) value = (value << 7n) | BigInt(digit & 0x7f);
      return value.toString();
    })
    .join('.');
}
