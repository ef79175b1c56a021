import { NameSubtree, ParsedCertificate, ParsedNameConstraints } from '../x509/certificate';

/**
 * RFC 5280 §4.2.1.10 name constraints for the two name forms an SVID path carries: URI (the SPIFFE ID) and
 * DNS (optional extra SANs). Returns undefined when `cert` satisfies `constraints`, or the reason it does not.
 *
 * Constraints on any other name form (directoryName, IP, email, otherName) are refused outright: the
 * certificate parser does not expose their values, and the RFC lets a validator that cannot process a form
 * reject the path rather than ignore a constraint (every subject DN is a directoryName).
 */
export function nameConstraintViolation(
  cert: ParsedCertificate,
  constraints: ParsedNameConstraints,
): string | undefined {
  const unsupported = [...constraints.permitted, ...constraints.excluded].find((s) => s.kind === 'other');
  if (unsupported !== undefined) {
    return 'the name constraints use a name form other than URI or DNS, which this validator does not process';
  }
  for (const uri of cert.uriSans) {
    const reason = checkName(uri, 'uri', constraints);
    if (reason !== undefined) return reason;
  }
  for (const dns of cert.dnsSans) {
    const reason = checkName(dns, 'dns', constraints);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

function checkName(
  name: string,
  kind: 'uri' | 'dns',
  constraints: ParsedNameConstraints,
): string | undefined {
  const permitted = constraints.permitted.filter((s) => s.kind === kind);
  const excluded = constraints.excluded.filter((s) => s.kind === kind);
  if (permitted.length === 0 && excluded.length === 0) return undefined;

  const matches = (s: NameSubtree): boolean | undefined =>
    kind === 'uri' ? uriMatches(name, s.value) : dnsMatches(name, s.value);

  for (const s of excluded) {
    const m = matches(s);
    // A name that cannot be compared (a URI without a host) might be inside the excluded subtree: fail closed.
    if (m !== false) return `${kind.toUpperCase()} name "${name}" is in the excluded subtree "${s.value}"`;
  }
  if (permitted.length > 0 && !permitted.some((s) => matches(s) === true)) {
    return `${kind.toUpperCase()} name "${name}" is outside the permitted subtrees (${permitted.map((s) => `"${s.value}"`).join(', ')})`;
  }
  return undefined;
}

/**
 * URI constraint: it applies to the host of the URI. A constraint beginning with "." matches any host below
 * that domain (not the domain itself); otherwise the host must equal it (RFC 5280: "the host must match
 * exactly"), case-insensitively. Returns undefined when the URI has no comparable host (no authority, or an
 * IP literal: the RFC defines URI constraints as domain names only), which callers treat as a violation.
 */
export function uriMatches(uri: string, constraint: string): boolean | undefined {
  const host = uriHost(uri);
  if (host === undefined) return undefined;
  const c = constraint.toLowerCase();
  if (c.startsWith('.')) return host.length > c.length && host.endsWith(c);
  return host === c;
}

/**
 * DNS constraint: any name formed by adding zero or more labels on the left of the constraint matches
 * (label boundaries respected: "example.com" does not match "badexample.com"). A leading "." restricts the
 * constraint to proper subdomains, as most implementations read it. The empty constraint matches everything.
 */
export function dnsMatches(name: string, constraint: string): boolean {
  const n = stripTrailingDot(name.toLowerCase());
  const c = stripTrailingDot(constraint.toLowerCase());
  if (c === '') return true;
  if (c.startsWith('.')) return n.length > c.length && n.endsWith(c);
  return n === c || n.endsWith(`.${c}`);
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

function stripTrailingDot(s: string): string {
  return s.endsWith('.') ? s.slice(0, -1) : s;
}
