/**
 * The openssl CLI companion of test/support/pki.ts: certificates minted by the openssl CLI alone (`openssl req
 * -x509` for roots, `openssl req` + `openssl x509 -req` for everything they sign), with the extensions written as
 * an OpenSSL user would write them in a config file, so the tests read certificates from an independent
 * implementation. Keys are files (0600), as openssl users keep them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ParsedCertificate } from '../../src/x509/certificate';
import { decodePemBlocks } from '../../src/x509/pem';
import { tempDir } from './tmp';
import { openssl, writeTemp } from './x509';

/** The CA and Web PKI extension sections. */
const CA_SECTIONS = `
[req]
distinguished_name = dn
[dn]

[root_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash

[root_ca_without_key_usage]
basicConstraints = critical,CA:TRUE
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash

# No extensions at all: \`openssl req -x509\` and \`openssl x509 -req\` then write an X.509 v1 certificate.
[v1]

[root_ca_without_basic_constraints]
keyUsage = critical,keyCertSign,cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash

# The authority key identifier as OpenSSL writes it by default: a key identifier when the issuer has an SKI,
# else the issuer's name and serial (under a v1 root).
[intermediate_ca_default_aki]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash

[intermediate_ca_without_key_usage]
basicConstraints = critical,CA:TRUE,pathlen:0
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[intermediate_ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

# A Web PKI (https_web endpoints): a CA and a server certificate for localhost and 127.0.0.1.
[web_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign

[web_server]
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
basicConstraints = critical,CA:FALSE

`;

/** The X509-SVID profile as an OpenSSL extension section. */
const SVID_EXTENSIONS: Record<string, string> = {
  subjectAltName: 'URI:spiffe://example.org/workload',
  keyUsage: 'critical,digitalSignature',
  extendedKeyUsage: 'serverAuth,clientAuth',
  basicConstraints: 'critical,CA:FALSE',
};

/** The valid SVID and one section per way of breaking it: the profile with the lines given changed or added. */
const SVID_SECTIONS: Record<string, Record<string, string>> = {
  svid: {},
  svid_without_key_identifiers: { subjectKeyIdentifier: 'none', authorityKeyIdentifier: 'none' },
  svid_two_uri_sans: { subjectAltName: 'URI:spiffe://example.org/workload,URI:spiffe://example.org/other' },
  svid_ca_true: { basicConstraints: 'critical,CA:TRUE' },
  svid_key_cert_sign: { keyUsage: 'critical,digitalSignature,keyCertSign' },
  svid_not_spiffe_uri: { subjectAltName: 'URI:https://example.org/workload' },
  svid_unknown_critical_extension: { '1.2.3.4': 'critical,ASN1:UTF8String:x' },
};

/** Extension sections, one per certificate shape the tests need. */
export const OPENSSL_CONFIG =
  CA_SECTIONS +
  Object.entries(SVID_SECTIONS)
    .map(([name, changes]) =>
      [
        `[${name}]`,
        ...Object.entries({ ...SVID_EXTENSIONS, ...changes }).map(([k, v]) => `${k} = ${v}`),
        '',
      ].join('\n'),
    )
    .join('\n');

/** 'ec-p256-explicit': a P-256 key whose SPKI spells the curve out (specifiedCurve) instead of naming it. */
export type OpensslKeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048' | 'ed25519' | 'ec-p256-explicit';

/** `openssl req -newkey` arguments and the digest flag for signatures made by a key of each type. */
const KEY_ARGS: Record<OpensslKeyType, { newkey: string[]; digest: string[] }> = {
  'ec-p256': { newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], digest: ['-sha256'] },
  'ec-p256-explicit': {
    newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-pkeyopt', 'ec_param_enc:explicit'],
    digest: ['-sha256'],
  },
  'ec-p384': { newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], digest: ['-sha384'] },
  'rsa-2048': { newkey: ['-newkey', 'rsa:2048'], digest: ['-sha256'] },
  // EdDSA has no separate digest: OpenSSL refuses one.
  ed25519: { newkey: ['-newkey', 'ed25519'], digest: [] },
};

export interface OpensslCert {
  certPath: string;
  keyPath: string;
  keyType: OpensslKeyType;
  pem: string;
  cert: ParsedCertificate;
}

/** A directory of OpenSSL-made certificates sharing one config file. */
export class OpensslPki {
  private readonly config: string;

  constructor(private readonly dir: string) {
    this.config = writeTemp(dir, 'openssl.cnf', OPENSSL_CONFIG);
  }

  /** A self-signed CA from `openssl req -x509` with the extensions of `section`. */
  root(
    name: string,
    section: string,
    keyType: OpensslKeyType,
    subject = `/O=Example/CN=${name}`,
  ): OpensslCert {
    const { certPath, keyPath } = this.paths(name);
    const args = KEY_ARGS[keyType];
    run([
      'req',
      '-x509',
      '-new',
      ...args.newkey,
      ...args.digest,
      '-nodes',
      '-keyout',
      keyPath,
      '-subj',
      subject,
      ...this.certArgs('-config', 2, section, certPath),
    ]);
    return this.load(certPath, keyPath, keyType);
  }

  /** A certificate for a fresh key of `keyType`, requested with `openssl req` and signed by `openssl x509 -req`. */
  issue(
    name: string,
    issuer: OpensslCert,
    section: string,
    keyType: OpensslKeyType,
    subject = `/CN=${name}`,
  ): OpensslCert {
    const { certPath, keyPath } = this.paths(name);
    const csrPath = join(this.dir, `${name}.csr`);
    run([
      'req',
      '-new',
      ...KEY_ARGS[keyType].newkey,
      '-nodes',
      '-keyout',
      keyPath,
      '-subj',
      subject,
      '-config',
      this.config,
      '-out',
      csrPath,
    ]);
    run([
      'x509',
      '-req',
      '-in',
      csrPath,
      '-CA',
      issuer.certPath,
      '-CAkey',
      issuer.keyPath,
      ...KEY_ARGS[issuer.keyType].digest,
      ...this.certArgs('-extfile', 1, section, certPath),
    ]);
    return this.load(certPath, keyPath, keyType);
  }

  /** What every certificate gets: a random serial, a lifetime, the extensions of `section`, the output file. */
  private certArgs(
    configFlag: '-config' | '-extfile',
    days: number,
    section: string,
    certPath: string,
  ): string[] {
    return [
      '-set_serial',
      randomSerial(),
      '-days',
      String(days),
      configFlag,
      this.config,
      '-extensions',
      section,
      '-out',
      certPath,
    ];
  }

  private paths(name: string): { certPath: string; keyPath: string } {
    return { certPath: join(this.dir, `${name}.pem`), keyPath: join(this.dir, `${name}.key`) };
  }

  private load(certPath: string, keyPath: string, keyType: OpensslKeyType): OpensslCert {
    chmodSync(keyPath, 0o600);
    const pem = readFileSync(certPath, 'utf8');
    const [der] = decodePemBlocks(pem, 'CERTIFICATE');
    assert.ok(der !== undefined);
    return { certPath, keyPath, keyType, pem, cert: ParsedCertificate.fromDer(der) };
  }
}

function run(args: string[]): void {
  const r = openssl(args);
  assert.ok(r.ok, `openssl ${args.join(' ')}: ${r.output}`);
}

/** A positive 128-bit serial in OpenSSL's hex notation. */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return `0x${b.toString('hex')}`;
}

/** The trust domain CA kinds `opensslCa` mints, by the `KEY_ARGS` key type each uses. */
const CA_KINDS = { p256: 'ec-p256', p384: 'ec-p384', rsa: 'rsa-2048', ed25519: 'ed25519' } as const;
export type CaKind = keyof typeof CA_KINDS;

export interface OpensslCa {
  certPem: string;
  keyPem: string;
  der: Uint8Array;
  cert: ParsedCertificate;
}

let caDir: string | undefined;
const caCache = new Map<string, OpensslCa>();

/**
 * A self-signed CA for `trustDomain` with a URI SAN of the trust domain ID, as X509-SVID §4 describes, from
 * `openssl req -x509` with its default digest, so bundle tests read certificates from an independent
 * implementation. Each (kind, trust domain, label) is made once per run.
 */
export function opensslCa(kind: CaKind, trustDomain = 'example.org', label = 'a'): OpensslCa {
  const cacheKey = `${kind}-${trustDomain}-${label}`;
  const hit = caCache.get(cacheKey);
  if (hit) return hit;
  caDir ??= tempDir('bundle-test');
  const keyFile = join(caDir, `${cacheKey}.key.pem`);
  const certFile = join(caDir, `${cacheKey}.cert.pem`);
  run([
    'req',
    '-x509',
    ...KEY_ARGS[CA_KINDS[kind]].newkey,
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    `/CN=${label} ${kind} test CA`,
    '-addext',
    `subjectAltName=URI:spiffe://${trustDomain}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const certPem = readFileSync(certFile, 'utf8');
  const der = decodePemBlocks(certPem, 'CERTIFICATE')[0]!;
  const ca: OpensslCa = {
    certPem,
    keyPem: readFileSync(keyFile, 'utf8'),
    der,
    cert: ParsedCertificate.fromDer(der),
  };
  caCache.set(cacheKey, ca);
  return ca;
}

export interface WebPki {
  /** PEM of the root: what a client trusts (web_trust_roots_pem). */
  rootPem: string;
  certFile: string;
  keyFile: string;
}

/** A Web PKI in `dir` for tests of https_web endpoints: a CA no Lanyard code built and a localhost server cert. */
export function createWebPki(dir: string): WebPki {
  const pki = new OpensslPki(dir);
  const root = pki.root('web-ca', 'web_ca', 'ec-p256', '/CN=Lanyard test web CA');
  const server = pki.issue('web', root, 'web_server', 'ec-p256', '/CN=localhost');
  return { rootPem: root.pem, certFile: server.certPath, keyFile: server.keyPath };
}
