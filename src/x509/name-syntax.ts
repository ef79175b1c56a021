/**
 * Syntax of the GeneralName forms a certificate or a name constraint may carry (RFC 5280 §4.2.1.6, §4.2.1.10),
 * shared by issuance (which refuses to write a malformed name) and path validation (which refuses to rely on
 * one: a name that does not parse cannot be placed inside or outside a constraint).
 */

const LDH_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * A dNSName in the preferred name syntax (RFC 1034 §3.5 as relaxed by RFC 1123: labels of letters, digits and
 * hyphens, not starting or ending with a hyphen, at most 63 characters; at most 253 in all). With `wildcard`,
 * the leftmost label may be exactly "*" when at least two labels follow (RFC 9525 §6.3; RFC 5280 itself does
 * not define wildcards). No leading or trailing dot, no empty label, no underscore.
 */
export function isDnsName(name: string, options: { wildcard?: boolean } = {}): boolean {
  return dnsNameProblem(name, options) === undefined;
}

/** Why `name` is not a dNSName (see isDnsName), or undefined when it is one. */
export function dnsNameProblem(name: string, options: { wildcard?: boolean } = {}): string | undefined {
  if (typeof name !== 'string' || name === '') return 'it is empty';
  if (name.length > 253) return 'it is longer than 253 characters';
  const labels = name.split('.');
  for (const [i, label] of labels.entries()) {
    if (i === 0 && label === '*' && options.wildcard === true && labels.length > 2) continue;
    if (!LDH_LABEL.test(label)) return `label "${label}" is not a letters-digits-hyphens label`;
  }
  return undefined;
}

// RFC 5322 §3.2.3 atext: the characters of an unquoted local part besides letters and digits.
const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
// RFC 5321 §4.1.2 Quoted-string: printable ASCII, with '"' and '\' escaped by a backslash.
const QUOTED_STRING = /^"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"$/;

export interface Mailbox {
  /** Case-sensitive (RFC 5321 §2.4). */
  local: string;
  /** A dNSName; compared case-insensitively. */
  domain: string;
}

/**
 * An rfc822Name is a Mailbox (RFC 5280 §4.2.1.6, RFC 5321 §4.1.2): local-part "@" domain, the local part a
 * dot-atom or a quoted string, the domain a dNSName. Address literals ("[192.0.2.1]") are not accepted: no
 * name constraint form can place them. Returns undefined for anything else.
 */
export function parseMailbox(address: string): Mailbox | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!DOT_ATOM.test(local) && !QUOTED_STRING.test(local)) return undefined;
  if (!isDnsName(domain)) return undefined;
  return { local, domain };
}

/** An iPAddress GeneralName in a certificate: 4 octets (IPv4) or 16 (IPv6), RFC 5280 §4.2.1.6. */
export function isIpAddressBytes(bytes: Uint8Array): boolean {
  return bytes.length === 4 || bytes.length === 16;
}

/**
 * An iPAddress name constraint: an address followed by a mask of the same length (8 or 32 octets, RFC 5280
 * §4.2.1.10), the mask a run of one bits followed by zero bits (a CIDR prefix). Returns the prefix length, or
 * undefined when the constraint is malformed: a mask with holes has no agreed meaning, and guessing one could
 * widen a permitted range.
 */
export function ipConstraintPrefix(bytes: Uint8Array): number | undefined {
  if (bytes.length !== 8 && bytes.length !== 32) return undefined;
  const mask = bytes.subarray(bytes.length / 2);
  let prefix = 0;
  let seenZero = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      const one = ((byte >> bit) & 1) === 1;
      if (one && seenZero) return undefined;
      if (one) prefix++;
      else seenZero = true;
    }
  }
  return prefix;
}

/**
 * Readable form of an iPAddress GeneralName: "192.0.2.1", "2001:db8::1", a constraint as "192.0.2.0/24" (or
 * "address/mask" when the mask is not a prefix), anything else as hex with its length.
 */
export function formatIpBytes(bytes: Uint8Array): string {
  if (bytes.length === 4 || bytes.length === 16) return formatAddress(bytes);
  if (bytes.length === 8 || bytes.length === 32) {
    const half = bytes.length / 2;
    const prefix = ipConstraintPrefix(bytes);
    const address = formatAddress(bytes.subarray(0, half));
    return prefix !== undefined
      ? `${address}/${prefix}`
      : `${address}/${formatAddress(bytes.subarray(half))}`;
  }
  return `<${bytes.length} bytes: ${Buffer.from(bytes).toString('hex')}>`;
}

function formatAddress(b: Uint8Array): string {
  if (b.length === 4) return [...b].join('.');
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) {
    return `::ffff:${[...b.subarray(12)].join('.')}`; // IPv4-mapped (RFC 5952 §5)
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // RFC 5952: the longest run (of two or more) of zero groups becomes "::".
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
