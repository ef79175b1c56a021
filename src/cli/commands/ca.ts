import type { Command } from 'commander';
import { initDevCa } from '../../ca/dev-ca';
import { type KeyAlgorithm } from '../../x509/keys';
import { usageError } from '../cli-error';
import { parseDuration, parseTrustDomainFlag } from '../input';
import { runAction } from '../run-action';
import { registerCaServerCommands } from './ca-server';
import { join } from 'node:path';

const KEY_ALGORITHMS: readonly KeyAlgorithm[] = [
  'ec-p256',
  'ec-p384',
  'rsa-2048',
  'rsa-3072',
  'rsa-4096',
  'ed25519',
];

/**
 * `lanyard ca ...`: `init` makes a development CA on disk; `rotate` and `show` act on a running server's CA
 * over its admin socket (ca-server.ts).
 */
export function registerCaCommands(program: Command): void {
  const ca = program
    .command('ca')
    .description("certificate authorities: a development CA on disk (init), the server's CA (rotate, show)");
  ca.command('init')
    .description('create a self-signed dev root CA: ca.pem and ca_key.pem (0600) in --out')
    .requiredOption('--trust-domain <td>', 'trust domain, e.g. example.org')
    .requiredOption('--out <dir>', 'directory for ca.pem and ca_key.pem')
    .option('--ttl <duration>', 'CA lifetime (e.g. 365d)', '365d')
    .option('--key <algorithm>', `CA key type: ${KEY_ALGORITHMS.join(', ')}`, 'ec-p256')
    .option('--force', 'replace an existing CA in --out')
    .action(
      runAction((opts: { trustDomain: string; out: string; ttl: string; key: string; force?: boolean }) => {
        if (!KEY_ALGORITHMS.includes(opts.key as KeyAlgorithm)) {
          throw usageError(`--key must be one of ${KEY_ALGORITHMS.join(', ')}`);
        }
        parseTrustDomainFlag(opts.trustDomain, '--trust-domain');
        const ttlSeconds = parseDuration(opts.ttl, '--ttl');
        const dev = initDevCa({
          trustDomain: opts.trustDomain,
          dir: opts.out,
          ttlSeconds,
          keyAlgorithm: opts.key as KeyAlgorithm,
          force: opts.force === true,
        });
        process.stdout.write(
          `created dev CA for trust domain ${dev.trustDomain}\n` +
            `  certificate: ${join(opts.out, 'ca.pem')}\n` +
            `  private key: ${join(opts.out, 'ca_key.pem')} (mode 0600)\n` +
            `  valid until: ${dev.cert.notAfter.toISOString()}\n`,
        );
      }),
    );
  registerCaServerCommands(ca);
}
