import { InvalidBundleError } from '../errors';
import { X509Bundle, parseSpiffeBundle } from '../bundle';
import { SpiffeId, TrustDomain } from '../spiffe';
import type { ParsedCertificate } from '../x509/certificate';
import { usageError } from './cli-error';

// Names the trust domain while the file is read, before the bundle's own CAs have said which one it is.
const UNNAMED = TrustDomain.parse('unnamed-bundle.invalid');

/**
 * A trust bundle file the user named: PEM certificates or a SPIFFE bundle document (JWKS); the first byte
 * tells which.
 *
 * Without `trustDomain`, the bundle's own CA certificates name it (their spiffe:// URI SANs). It never comes
 * from the certificate being checked: a leaf that claims another trust domain must not make this bundle
 * vouch for that domain. A bundle that names no trust domain, or more than one, is a usage error asking for
 * --trust-domain. With `trustDomain`, CAs that name a different trust domain are left out, so a foreign CA
 * never vouches for it either; CAs that name none (an organisation's root) stay.
 *
 * @throws BundleError (ERR_INVALID_BUNDLE) when the file is neither format or does not parse.
 */
export function readBundleFile(text: string, trustDomain: TrustDomain | undefined): X509Bundle {
  const parsed = parseBundleText(trustDomain ?? UNNAMED, text);
  const td = trustDomain ?? onlyTrustDomainOf(parsed);
  return new X509Bundle(td, {
    x509Authorities: parsed.x509Authorities.filter((ca) =>
      [...trustDomainsNamedBy(ca)].every((name) => name === td.name),
    ),
    jwtAuthorities: parsed.jwtAuthorities,
    ...(parsed.sequence !== undefined && { sequence: parsed.sequence }),
    ...(parsed.refreshHint !== undefined && { refreshHint: parsed.refreshHint }),
  });
}

function parseBundleText(trustDomain: TrustDomain, text: string): X509Bundle {
  if (text.trimStart().startsWith('{')) return parseSpiffeBundle(trustDomain, text);
  if (text.includes('-----BEGIN')) return X509Bundle.fromPem(trustDomain, text);
  throw new InvalidBundleError('bundle file is neither PEM nor a SPIFFE bundle (JSON)');
}

/** The one trust domain the bundle's CAs name. */
function onlyTrustDomainOf(bundle: X509Bundle): TrustDomain {
  const names = new Set(bundle.x509Authorities.flatMap((ca) => [...trustDomainsNamedBy(ca)]));
  if (names.size === 1) return TrustDomain.parse([...names][0]!);
  throw usageError(
    names.size === 0
      ? 'the bundle names no trust domain (no CA certificate has a spiffe:// URI SAN): pass --trust-domain'
      : `the bundle names several trust domains (${[...names].sort().join(', ')}): pass --trust-domain`,
  );
}

/** The trust domains a CA certificate names in spiffe:// URI SANs. */
function trustDomainsNamedBy(ca: ParsedCertificate): Set<string> {
  const names = new Set<string>();
  for (const uri of ca.uriSans) {
    if (!uri.toLowerCase().startsWith('spiffe://')) continue;
    // A CA names its trust domain by the domain's own ID (spiffe://example.org), but tolerate a path.
    const hasPath = uri.includes('/', 'spiffe://'.length);
    names.add((hasPath ? SpiffeId.parse(uri).trustDomain : TrustDomain.parse(uri)).name);
  }
  return names;
}
