import { GeneralName, NameSubtree, ParsedCertificate, ParsedNameConstraints } from '../x509/certificate';
import { nameAttributeStrings } from '../x509/certificate-der';
import { dnWithin, formatDn, isEmptyDn, parseDn, Rdn } from '../x509/distinguished-name';
import {
  dnsNameProblem,
  formatIpBytes,
  ipConstraintPrefix,
  Mailbox,
  parseMailbox,
} from '../x509/name-syntax';

/**
 * RFC 5280 §4.2.1.10 name constraints, every name form a certificate can carry:
 *
 * - URI: the host of the URI (a SPIFFE ID's trust domain); "host" exactly, ".domain" any host below it.
 * - dNSName: the base and any name formed by adding labels on its left. A wildcard SAN ("*.example.com") stands
 *   for every name it would match: it is inside a permitted subtree only if all of them are, and inside an
 *   excluded subtree if any of them is (CVE-2025-61727's class: "*.example.com" under an excluded
 *   "bar.example.com" is refused).
 * - rfc822Name: a mailbox exactly, every mailbox on a host, or (".domain") every mailbox below a domain; applied to
 *   rfc822Name SANs and to emailAddress attributes of the subject.
 * - iPAddress: an address range (address and mask, the mask a CIDR prefix); an IPv4-mapped IPv6 SAN
 *   (::ffff:a.b.c.d) is also judged as the IPv4 address it denotes, so it cannot slip past an IPv4 exclusion.
 * - directoryName: the base is a prefix of the name, RDN by RDN (x509/distinguished-name.ts); applied to the
 *   subject (when it is not empty) and to directoryName SANs.
 * - otherName and registeredID: RFC 5280 leaves their matching to the specification of each type, which this
 *   validator does not know. A constraint on them is harmless to a certificate without such a name; a
 *   certificate that has one under any such constraint is refused (fail closed), since whether it is inside the
 *   subtree cannot be decided.
 *
 * A constraint restricts only names of its own form; a certificate with no name of that form is unaffected.
 * Whether the constraints and the names are well-formed is checked before (path-rules.ts): here a name that
 * does not parse is simply never inside a permitted subtree and always possibly inside an excluded one.
 */

/**
 * Comparisons one path may cost, as Go bounds them: a CA with thousands of subtrees over a leaf with thousands of
 * names is work without a purpose, and is refused once past this bound.
 */
export const MAX_NAME_CONSTRAINT_CHECKS = 1 << 16;

/** The names of one certificate, grouped by the form a constraint applies to. */
interface CertificateNames {
  uri: string[];
  dns: string[];
  email: string[];
  ip: Uint8Array[];
  dn: { rdns: Rdn[]; text: string }[];
  other: string[];
}

/** Counts comparisons across every check of one candidate path. */
export class ConstraintBudget {
  private used = 0;

  constructor(private readonly limit = MAX_NAME_CONSTRAINT_CHECKS) {}

  /** False once `n` more comparisons would pass the limit. */
  spend(n: number): boolean {
    this.used += n;
    return this.used <= this.limit;
  }
}

const OID_EMAIL_ADDRESS = '1.2.840.113549.1.9.1';
const namesCache = new WeakMap<ParsedCertificate, CertificateNames>();
const baseCache = new WeakMap<NameSubtree, Rdn[]>();

/**
 * Undefined when every name of `cert` satisfies `constraints`, else the reason it does not. `budget` bounds the
 * work of the whole path.
 */
export function nameConstraintViolation(
  cert: ParsedCertificate,
  constraints: ParsedNameConstraints,
  budget: ConstraintBudget = new ConstraintBudget(),
): string | undefined {
  const names = namesOf(cert);
  const subtrees = (kind: GeneralName['kind']) => ({
    permitted: constraints.permitted.filter((s) => s.kind === kind),
    excluded: constraints.excluded.filter((s) => s.kind === kind),
  });
  const forms: [GeneralName['kind'], number][] = [
    ['uri', names.uri.length],
    ['dns', names.dns.length],
    ['email', names.email.length],
    ['ip', names.ip.length],
    ['dn', names.dn.length],
    ['other', names.other.length],
  ];
  let comparisons = 0;
  for (const [kind, count] of forms) {
    const s = subtrees(kind);
    comparisons += count * (s.permitted.length + s.excluded.length);
  }
  if (!budget.spend(comparisons)) {
    return `checking the name constraints would take more than ${MAX_NAME_CONSTRAINT_CHECKS} comparisons`;
  }

  const other = subtrees('other');
  if (names.other.length > 0 && other.permitted.length + other.excluded.length > 0) {
    return `${names.other[0]} cannot be checked against otherName/registeredID constraints (their matching rules are type-specific)`;
  }
  return (
    checkForm(names.uri, subtrees('uri'), 'URI', (n) => n, uriMatches) ??
    checkForm(names.dns, subtrees('dns'), 'DNS name', (n) => n, dnsMatches) ??
    checkForm(names.email, subtrees('email'), 'email address', (n) => n, emailMatches) ??
    checkForm(names.ip, subtrees('ip'), 'IP address', formatIpBytes, ipMatches) ??
    checkForm(names.dn, subtrees('dn'), 'directory name', (n) => n.text, dnMatches)
  );
}

/**
 * How a name relates to a subtree: for a permitted subtree, `true` only when the name is certainly inside; for an
 * excluded one, anything but `false` counts as inside (a name that cannot be compared might be).
 */
type Matcher<N> = (name: N, base: NameSubtree, role: 'permitted' | 'excluded') => boolean | undefined;

function checkForm<N>(
  names: readonly N[],
  subtrees: { permitted: NameSubtree[]; excluded: NameSubtree[] },
  label: string,
  show: (name: N) => string,
  matches: Matcher<N>,
): string | undefined {
  if (subtrees.permitted.length === 0 && subtrees.excluded.length === 0) return undefined;
  for (const name of names) {
    for (const s of subtrees.excluded) {
      if (matches(name, s, 'excluded') !== false) {
        return `${label} "${show(name)}" is in the excluded subtree "${s.value}"`;
      }
    }
    if (
      subtrees.permitted.length > 0 &&
      !subtrees.permitted.some((s) => matches(name, s, 'permitted') === true)
    ) {
      return `${label} "${show(name)}" is outside the permitted subtrees (${subtrees.permitted.map((s) => `"${s.value}"`).join(', ')})`;
    }
  }
  return undefined;
}

function namesOf(cert: ParsedCertificate): CertificateNames {
  let names = namesCache.get(cert);
  if (names !== undefined) return names;
  names = { uri: [], dns: [], email: [], ip: [], dn: [], other: [] };
  for (const g of cert.subjectAltNames) {
    if (g.kind === 'ip') names.ip.push(g.bytes ?? new Uint8Array(0));
    else if (g.kind === 'dn') names.dn.push({ rdns: parseDn(g.bytes!), text: g.value });
    else names[g.kind].push(g.value);
  }
  if (!isEmptyDn(cert.subjectDer)) {
    names.dn.push({ rdns: parseDn(cert.subjectDer), text: formatDn(cert.subjectDer) });
  }
  names.email.push(...nameAttributeStrings(cert.subjectDer, OID_EMAIL_ADDRESS));
  namesCache.set(cert, names);
  return names;
}

/**
 * URI constraint: it applies to the host of the URI. A constraint beginning with "." matches any host below
 * that domain (not the domain itself); otherwise the host must equal it (RFC 5280: "the host must match
 * exactly"), case-insensitively. Returns undefined when the URI has no comparable host (no authority, or an
 * IP literal: the RFC defines URI constraints as domain names only), which callers treat as a violation.
 */
export function uriMatches(uri: string, base: NameSubtree | string): boolean | undefined {
  const host = uriHost(uri);
  if (host === undefined) return undefined;
  const c = baseValue(base).toLowerCase();
  if (c.startsWith('.')) return host.length > c.length && host.endsWith(c);
  return host === c;
}

/**
 * dNSName constraint: the base and any name formed by adding labels on its left, at label boundaries
 * ("example.com" contains "a.example.com", not "badexample.com"); the empty base contains every name. A name
 * that is not a dNSName (or a wildcard pattern) is never certainly inside, and may be inside anything.
 *
 * For a wildcard "*.rest": inside a permitted base when every expansion is, i.e. when "rest" is; possibly inside
 * an excluded base when some expansion is: "rest" inside it, or the base exactly one label below "rest".
 */
export function dnsMatches(
  name: string,
  base: NameSubtree | string,
  role: 'permitted' | 'excluded' = 'permitted',
): boolean | undefined {
  const c = baseValue(base).toLowerCase();
  if (dnsNameProblem(name, { wildcard: true }) !== undefined) return undefined;
  const n = name.toLowerCase();
  if (!n.startsWith('*.')) return dnsWithin(n, c);
  const rest = n.slice(2);
  if (dnsWithin(rest, c)) return true;
  if (role === 'permitted') return false;
  return c.endsWith(`.${rest}`) && !c.slice(0, -rest.length - 1).includes('.');
}

function dnsWithin(name: string, base: string): boolean {
  return base === '' || name === base || name.endsWith(`.${base}`);
}

/**
 * rfc822Name constraint (RFC 5280 §4.2.1.10): "local@host" is that mailbox (local part case-sensitive, host not),
 * "host" every mailbox on that host, ".domain" every mailbox on a host below the domain.
 */
export function emailMatches(address: string, base: NameSubtree | string): boolean | undefined {
  const mailbox = parseMailbox(address);
  if (mailbox === undefined) return undefined;
  const c = baseValue(base);
  if (c.includes('@')) {
    const want: Mailbox | undefined = parseMailbox(c);
    return want !== undefined && want.local === mailbox.local && sameHost(want.domain, mailbox.domain);
  }
  const domain = mailbox.domain.toLowerCase();
  const host = c.toLowerCase();
  if (host.startsWith('.')) return domain.length > host.length && domain.endsWith(host);
  return domain === host;
}

function sameHost(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/**
 * iPAddress constraint: the first prefix-length bits of the address equal the base's. An IPv4-mapped IPv6 address
 * is inside a subtree when either its IPv6 or its IPv4 form is. A malformed address (not 4 or 16 octets) is
 * never certainly inside anything.
 */
export function ipMatches(address: Uint8Array, base: NameSubtree): boolean | undefined {
  if (address.length !== 4 && address.length !== 16) return undefined;
  const range = base.bytes ?? new Uint8Array(0);
  const prefix = ipConstraintPrefix(range);
  if (prefix === undefined) return undefined;
  return ipForms(address).some((form) => inRange(form, range, prefix));
}

function ipForms(address: Uint8Array): Uint8Array[] {
  const mapped =
    address.length === 16 &&
    address.subarray(0, 10).every((b) => b === 0) &&
    address[10] === 0xff &&
    address[11] === 0xff;
  return mapped ? [address, address.subarray(12)] : [address];
}

function inRange(address: Uint8Array, range: Uint8Array, prefix: number): boolean {
  if (range.length !== address.length * 2) return false;
  for (let bit = 0; bit < prefix; bit++) {
    const i = bit >> 3;
    const m = 0x80 >> (bit & 7);
    if ((address[i]! & m) !== (range[i]! & m)) return false;
  }
  return true;
}

function dnMatches(name: { rdns: Rdn[] }, base: NameSubtree): boolean {
  let rdns = baseCache.get(base);
  if (rdns === undefined) {
    rdns = parseDn(base.bytes!);
    baseCache.set(base, rdns);
  }
  return dnWithin(name.rdns, rdns);
}

/** Lower-cased host of an absolute URI with an authority; undefined when there is none or it is an IP. */
export function uriHost(uri: string): string | undefined {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(uri);
  if (m === null) return undefined;
  let authority = m[1] ?? '';
  const at = authority.lastIndexOf('@');
  if (at >= 0) authority = authority.slice(at + 1);
  if (authority.startsWith('[')) return undefined; // IPv6 literal
  authority = authority.replace(/:\d*$/, '');
  if (authority === '' || /^\d+(\.\d+){3}$/.test(authority)) return undefined;
  return stripTrailingDot(authority.toLowerCase());
}

function baseValue(base: NameSubtree | string): string {
  return typeof base === 'string' ? base : base.value;
}

function stripTrailingDot(s: string): string {
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

/**
 * Why a subtree base cannot be a constraint of its form (RFC 5280 §4.2.1.10), or undefined when it can: a
 * dNSName base is a dNSName or empty (no leading period, no wildcard: only URI and rfc822Name bases have the
 * "." form); a URI base a host or ".domain"; an rfc822Name base a mailbox, a host or ".domain"; an iPAddress
 * base an address and a prefix mask of the same family. A constraint that cannot be read would be guessed at,
 * so the path is refused rather than the subtree skipped.
 */
export function subtreeProblem(s: NameSubtree): string | undefined {
  switch (s.kind) {
    case 'dns':
      return s.value === '' ? undefined : dnsProblem(s.value);
    case 'uri':
      return /^\.?[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/.test(s.value) ? undefined : 'not a host or ".domain"';
    case 'email': {
      if (s.value.includes('@')) return parseMailbox(s.value) === undefined ? 'not a mailbox' : undefined;
      return dnsProblem(s.value.startsWith('.') ? s.value.slice(1) : s.value);
    }
    case 'ip':
      return ipConstraintPrefix(s.bytes ?? new Uint8Array(0)) === undefined
        ? 'not an address and a prefix mask (8 or 32 octets)'
        : undefined;
    default:
      return undefined;
  }
}

function dnsProblem(value: string): string | undefined {
  const problem = dnsNameProblem(value);
  return problem === undefined ? undefined : `not a DNS name: ${problem}`;
}
