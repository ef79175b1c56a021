/**
 * A Web PKI for tests of https_web endpoints: a root CA and a server certificate for `localhost` and
 * 127.0.0.1, made by the openssl CLI (a certificate no Lanyard code built). Files in `dir`, keys 0600.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface WebPki {
  /** PEM of the root: what a client trusts (web_trust_roots_pem). */
  rootPem: string;
  certFile: string;
  keyFile: string;
}

export function createWebPki(dir: string): WebPki {
  const f = (name: string): string => path.join(dir, name);
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('web-ca.key'),
    '-out',
    f('web-ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=Lanyard test web CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  run(['req', ...ec, '-keyout', f('web.key'), '-out', f('web.csr'), '-subj', '/CN=localhost']);
  fs.writeFileSync(
    f('web.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n',
  );
  run([
    'x509',
    '-req',
    '-in',
    f('web.csr'),
    '-CA',
    f('web-ca.pem'),
    '-CAkey',
    f('web-ca.key'),
    '-CAcreateserial',
    '-out',
    f('web.pem'),
    '-days',
    '2',
    '-extfile',
    f('web.ext'),
  ]);
  fs.chmodSync(f('web.key'), 0o600);
  fs.chmodSync(f('web-ca.key'), 0o600);
  return { rootPem: fs.readFileSync(f('web-ca.pem'), 'utf8'), certFile: f('web.pem'), keyFile: f('web.key') };
}
