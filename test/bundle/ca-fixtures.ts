/**
 * Test CA certificates made by the openssl CLI, so the bundle tests read certificates from an independent
 * implementation rather than from our own builder. Each kind is generated once per test run.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePemBlocks } from '../../src/x509/pem';
import { ParsedCertificate } from '../../src/x509/certificate';

export type CaKind = 'p256' | 'p384' | 'rsa' | 'ed25519';

export interface TestCa {
  certPem: string;
  keyPem: string;
  der: Uint8Array;
  cert: ParsedCertificate;
}

const NEWKEY: Record<CaKind, string[]> = {
  p256: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  p384: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  rsa: ['-newkey', 'rsa:2048'],
  ed25519: ['-newkey', 'ed25519'],
};

let dir: string | undefined;
const cache = new Map<string, TestCa>();

function workDir(): string {
  if (dir === undefined) {
    const created = mkdtempSync(join(tmpdir(), 'lanyard-bundle-test-'));
    dir = created;
    process.on('exit', () => rmSync(created, { recursive: true, force: true }));
  }
  return dir;
}

/** A self-signed CA for `trustDomain` with a URI SAN of the trust domain ID, as X509-SVID §4 describes. */
export function makeCa(kind: CaKind, trustDomain = 'example.org', label = 'a'): TestCa {
  const cacheKey = `${kind}-${trustDomain}-${label}`;
  const hit = cache.get(cacheKey);
  if (hit) return hit;
  const keyFile = join(workDir(), `${cacheKey}.key.pem`);
  const certFile = join(workDir(), `${cacheKey}.cert.pem`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      ...NEWKEY[kind],
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
    ],
    { stdio: 'pipe' },
  );
  const certPem = readFileSync(certFile, 'utf8');
  const der = decodePemBlocks(certPem, 'CERTIFICATE')[0]!;
  const ca: TestCa = {
    certPem,
    keyPem: readFileSync(keyFile, 'utf8'),
    der,
    cert: ParsedCertificate.fromDer(der),
  };
  cache.set(cacheKey, ca);
  return ca;
}
