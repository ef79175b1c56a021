/**
 * Dotted-decimal form of an OID as @peculiar/asn1-schema (asn1js) reports it. asn1js cannot hold an arc above
 * 2^53 in a number and renders it as "{hex}" of its base-128 digits, one byte per digit; UUID-based OIDs
 * (2.25.<128-bit integer>), like the agent-context extension's, always hit that. Converting back lets callers
 * compare against the OID as written in the standards. Already-decimal strings pass unchanged.
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
