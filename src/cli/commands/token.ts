/** `lanyard token ...`: single-use join tokens for attestation. */
import type { Command } from 'commander';
import { usageError } from '../cli-error';
import { parseDuration } from '../input';
import { runAction } from '../run-action';
import { printJson } from '../output';
import { type AdminConnectionOptions, withAdminClient, withAdminOptions } from './server-admin';

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('join tokens: single-use attestation secrets');

  withAdminOptions(
    token
      .command('create')
      .description(
        'create a join token bound to one registration entry; it is shown once and cannot be shown again',
      )
      .option('--entry-id <id>', 'the entry a workload attesting with this token receives')
      .option(
        '--spiffe-id <id>',
        'instead of --entry-id: the SPIFFE ID of exactly one entry (several entries with it are refused)',
      )
      .option('--ttl <duration>', 'how long the token can be used, e.g. 10m (default: 10m)'),
  ).action(
    runAction(
      async (opts: AdminConnectionOptions & { entryId?: string; spiffeId?: string; ttl?: string }) => {
        if (opts.entryId === undefined && opts.spiffeId === undefined) {
          throw usageError('give --entry-id (or --spiffe-id naming exactly one entry)');
        }
        const ttlSeconds = opts.ttl !== undefined ? parseDuration(opts.ttl, '--ttl') : 0;
        const res = await withAdminClient(opts, (c) =>
          c.createJoinToken({ entryId: opts.entryId ?? '', spiffeId: opts.spiffeId ?? '', ttlSeconds }),
        );
        const expiresAt = res.expiresAt?.toISOString() ?? '';
        if (opts.json) {
          printJson({
            token: res.token,
            tokenId: res.tokenId,
            entryId: res.entryId,
            spiffeId: res.spiffeId,
            expiresAt,
          });
          return;
        }
        // The token alone on stdout, so `TOKEN=$(lanyard token create ...)` works; the rest on stderr.
        process.stdout.write(`${res.token}\n`);
        process.stderr.write(
          `join token ${res.tokenId} for entry ${res.entryId} (${res.spiffeId}), single use, expires ${expiresAt}\n` +
            'it is shown only now: the server keeps only its hash\n',
        );
      },
    ),
  );
}
