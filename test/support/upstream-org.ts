/**
 * An organisation PKI for ca.upstream tests: a root and an intermediate (pathLen 1: it signs Lanyard's CA,
 * which signs SVIDs), written as files a config names, and that config.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ParsedCertificate } from '../../src/x509/certificate';
import { buildName, randomSerial, signCertificate } from '../../src/x509/build';
import {
  authorityKeyIdExtDer,
  basicConstraintsExtDer,
  keyUsageExtDer,
  subjectKeyIdExtDer,
  subjectKeyIdOf,
} from '../../src/x509/der-extensions';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { encodePem } from '../../src/x509/pem';
import { createIntermediateCa, createRootCa } from '../../src/x509/profiles';

export const ORG_TD = 'lanyard.local';

export interface Org {
  root: ParsedCertificate;
  rootKey: KeyObject;
  intermediate: ParsedCertificate;
  dir: string;
}

/**
 * `<parent>/<name>/{root.pem,int.pem,int.key}`. By default both CAs name ORG_TD in a spiffe:// URI SAN, as
 * Lanyard's own profiles do; with `spiffeNamed: false` they name no trust domain, like a real organisation's
 * PKI, so a bundle of the root alone cannot say which trust domain it is for.
 */
export function makeOrg(parent: string, name: string, opts: { spiffeNamed?: boolean } = {}): Org {
  const dir = path.join(parent, name);
  fs.mkdirSync(dir);
  const rootKey = generateSigningKeyPair('ec-p384').privateKey;
  const { privateKey: intermediateKey } = generateSigningKeyPair('ec-p256');
  const subject = (cn: string): { organization: string; commonName: string } => ({
    organization: 'Example Org',
    commonName: `${name} ${cn}`,
  });
  let root: ParsedCertificate;
  let intermediate: ParsedCertificate;
  if (opts.spiffeNamed === false) {
    root = plainCa({ subject: subject('Root'), key: rootKey, signer: undefined, days: 3650 });
    intermediate = plainCa({
      subject: subject('Workload CA'),
      key: intermediateKey,
      signer: { cert: root, key: rootKey },
      days: 365,
      pathLen: 1,
    });
  } else {
    root = createRootCa({
      trustDomain: ORG_TD,
      key: rootKey,
      ttlSeconds: 10 * 365 * 86400,
      subject: subject('Root'),
    }).cert;
    intermediate = createIntermediateCa({
      trustDomain: ORG_TD,
      publicKey: intermediateKey,
      issuer: { cert: root, key: rootKey },
      ttlSeconds: 365 * 86400,
      pathLen: 1,
      subject: subject('Workload CA'),
    }).cert;
  }
  fs.writeFileSync(path.join(dir, 'int.pem'), encodePem('CERTIFICATE', intermediate.der));
  fs.writeFileSync(path.join(dir, 'int.key'), intermediateKey.export({ type: 'pkcs8', format: 'pem' }), {
    mode: 0o600,
  });
  fs.writeFileSync(path.join(dir, 'root.pem'), encodePem('CERTIFICATE', root.der));
  return { root, rootKey, intermediate, dir };
}

/** A CA certificate with no SAN at all: what an organisation's own PKI tooling issues. */
function plainCa(o: {
  subject: { organization: string; commonName: string };
  key: KeyObject;
  signer: { cert: ParsedCertificate; key: KeyObject } | undefined;
  days: number;
  pathLen?: number;
}): ParsedCertificate {
  const spki = new Uint8Array(createPublicKey(o.key).export({ type: 'spki', format: 'der' }));
  const name = buildName(o.subject);
  const now = Math.floor(Date.now() / 1000) * 1000;
  const extensions = [
    basicConstraintsExtDer(true, o.pathLen),
    keyUsageExtDer(['keyCertSign', 'cRLSign']),
    subjectKeyIdExtDer(subjectKeyIdOf(spki)),
  ];
  if (o.signer) extensions.push(authorityKeyIdExtDer(o.signer.cert.subjectKeyId!));
  return ParsedCertificate.fromDer(
    signCertificate({
      serial: randomSerial(),
      issuer: o.signer ? o.signer.cert.subjectDer : name,
      subject: name,
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + o.days * 86400_000),
      spki,
      extensions,
      signingKey: o.signer ? o.signer.key : o.key,
    }),
  );
}

/** A config file in `dir` naming the upstream files relative to itself, as a person would write it. */
export function writeConfig(dir: string, upstream: { cert: string; key: string; bundle: string }): string {
  const file = path.join(dir, 'server.yaml');
  fs.writeFileSync(
    file,
    [
      'listen_address: 127.0.0.1:0',
      'ca:',
      '  ttl: 24h',
      '  upstream:',
      `    cert_file: ${upstream.cert}`,
      `    key_file: ${upstream.key}`,
      `    bundle_file: ${upstream.bundle}`,
      '',
    ].join('\n'),
  );
  return file;
}

export const pemOf = (c: ParsedCertificate | Uint8Array): string =>
  encodePem('CERTIFICATE', c instanceof ParsedCertificate ? c.der : c);
