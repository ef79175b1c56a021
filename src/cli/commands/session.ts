/**
 * `lanyard session end <sessionId>` and `lanyard svid revoke <serialHex>`: revocation from the server host,
 * over the admin socket. Both print what was revoked; verifiers learn it from WatchRevocations and the CRL.
 */
import type { Command } from 'commander';
import { runAction } from '../run-action';
import { type AdminConnectionOptions, printJson, withAdminClient, withAdminOptions } from './server-admin';

interface ReasonOptions extends AdminConnectionOptions {
  reason?: string;
}

export function registerSessionCommands(program: Command): void {
  const session = program.command('session').description('task sessions of agents');
  withAdminOptions(
    session
      .command('end')
      .description('end a session and every session delegated from it; their SVIDs are revoked')
      .argument('<sessionId>', 'the session id (s-…), as in the SVID agent context')
      .option('--reason <text>', 'recorded with the revocation (at most 256 bytes)'),
  ).action(
    runAction(async (sessionId: string, opts: ReasonOptions) => {
      const res = await withAdminClient(opts, (c) => c.endSession({ sessionId, reason: opts.reason ?? '' }));
      if (opts.json) {
        printJson({ sessionId, endedSessionIds: res.endedSessionIds });
        return;
      }
      if (res.endedSessionIds.length === 0) {
        process.stdout.write(`session ${sessionId} had already ended: nothing more to end\n`);
        return;
      }
      process.stdout.write(
        `ended ${res.endedSessionIds.length} session(s):\n${res.endedSessionIds.map((s) => `  ${s}\n`).join('')}`,
      );
    }),
  );
}

/** Attached to the `svid` group by svid.ts. */
export function registerSvidRevokeCommand(svid: Command): void {
  withAdminOptions(
    svid
      .command('revoke')
      .description('revoke one certificate by serial number (hex; colons allowed, as openssl prints it)')
      .argument('<serialHex>', 'the certificate serial, e.g. from `lanyard svid inspect`')
      .option('--reason <text>', 'recorded with the revocation (at most 256 bytes)'),
  ).action(
    runAction(async (serialHex: string, opts: ReasonOptions) => {
      const { revocation } = await withAdminClient(opts, (c) =>
        c.revokeSvid({ serialHex, reason: opts.reason ?? '' }),
      );
      const r = {
        serialHex: revocation?.id ?? '',
        sequence: revocation?.sequence ?? 0,
        reason: revocation?.reason ?? '',
        revokedAt: revocation?.revokedAt?.toISOString() ?? '',
        expiresAt: revocation?.expiresAt?.toISOString() ?? '',
      };
      if (opts.json) {
        printJson(r);
        return;
      }
      process.stdout.write(
        `revoked serial ${r.serialHex} (revocation ${r.sequence}, at ${r.revokedAt}; listed until ${r.expiresAt})\n`,
      );
    }),
  );
}
