/**
 * `lanyard demo`: the end-to-end demo of `npm run demo` (src/demo/run-demo.ts), from the installed CLI.
 */
import type { Command } from 'commander';
import { demoFailureText, runDemo } from '../../demo/run-demo';
import { CliError } from '../cli-error';
import { EXIT_REJECTED } from '../exit-codes';
import { runAction } from '../run-action';

export function registerDemoCommands(program: Command): void {
  program
    .command('demo')
    .description('run Lanyard end to end on 127.0.0.1 in a temp dir and check every step (as npm run demo)')
    .option(
      '--policy-dir <dir>',
      'Cedar policies for the server and both services (default: examples/policy)',
    )
    .option('--keep', 'keep the temp dir (data, keys, audit files) afterwards')
    .addHelpText(
      'after',
      `
Starts a server (SQLite, its own CA, a local OIDC issuer for principals, the Cedar policies), registers four
workloads that attest with join tokens, opens a task session for alice, delegates it to a tool-runner, calls
service A over mutual TLS (gRPC) and A calls service B over https with the delegated SVID; B prints the chain
alice -> planner -> tool-runner -> service-a it read from the certificate and the Cedar decision. Then the
session ends, the next call is refused (ERR_REVOKED), and lanyard audit verify / trace print the audit trail.

Nothing but loopback traffic; the temp dir is removed at the end unless --keep. Prints each step it checked
and "Demo passed" on success (exit 0); otherwise "Demo FAILED: <step>: <why>" (exit 1).`,
    )
    .action(
      runAction(async (opts: { policyDir?: string; keep?: boolean }) => {
        try {
          await runDemo({
            keep: opts.keep === true,
            ...(opts.policyDir !== undefined && { policyDir: opts.policyDir }),
          });
        } catch (e) {
          process.stdout.write(`\n${demoFailureText(e)}\n`);
          // Reported on stdout above, with the step that failed.
          throw new CliError('', EXIT_REJECTED);
        }
      }),
    );
}
