/** `lanyard bundle show`: the trust bundle of the running server, over its admin socket. */
import type { Command } from 'commander';
import { usageError } from '../cli-error';
import { runAction } from '../run-action';
import { printJson } from '../output';
import { type AdminConnectionOptions, withAdminClient, withAdminOptions } from './server-admin';

const FORMATS = ['pem', 'jwks'] as const;
type BundleFormat = (typeof FORMATS)[number];

export function registerBundleCommands(program: Command): void {
  const bundle = program.command('bundle').description('the trust bundle verifiers need');
  withAdminOptions(
    bundle
      .command('show')
      .description('print the current bundle: PEM roots (for OpenSSL, grpc) or the SPIFFE bundle (JWKS)')
      .option('--format <format>', `${FORMATS.join(' or ')}`, 'pem'),
  ).action(
    runAction(async (opts: AdminConnectionOptions & { format: string }) => {
      if (!(FORMATS as readonly string[]).includes(opts.format)) {
        throw usageError(`--format must be one of ${FORMATS.join(', ')}`);
      }
      const format = opts.format as BundleFormat;
      const { bundle } = await withAdminClient(opts, (c) => c.getBundle({}));
      if (!bundle) throw usageError('the server returned no bundle');
      if (opts.json) {
        printJson({
          trustDomain: bundle.trustDomain,
          sequence: bundle.sequence,
          refreshHintSeconds: bundle.refreshHintSeconds,
          ...(format === 'pem'
            ? { x509AuthoritiesPem: bundle.x509AuthoritiesPem }
            : { spiffeBundle: JSON.parse(bundle.spiffeBundleJson) as unknown }),
        });
        return;
      }
      // The bundle alone on stdout, so `lanyard bundle show > bundle.pem` works; the summary on stderr.
      process.stdout.write(format === 'pem' ? bundle.x509AuthoritiesPem : `${bundle.spiffeBundleJson}\n`);
      process.stderr.write(
        `bundle of ${bundle.trustDomain}, sequence ${bundle.sequence}, ${bundle.x509Authorities.length} X.509 authorities\n`,
      );
    }),
  );
}
