/**
 * `npm run demo`: Lanyard end to end on one machine, everything on 127.0.0.1 in a temp dir (scripts/demo/run-demo.ts).
 * Exits 0 only when every step behaved as expected, 1 otherwise, naming the step; 2 on a usage error. A script of
 * the checkout, not a command of the package: the demo does not ship in dist/.
 */
import { Command, CommanderError } from 'commander';
import { demoFailureText, runDemo } from './demo/run-demo';
import { runFederationDemo } from './demo/run-federation-demo';

const program = new Command()
  .name('npm run demo --')
  .description('run Lanyard end to end on 127.0.0.1 in a temp dir and check every step')
  .option('--policy-dir <dir>', 'Cedar policies for the server and both services (default: examples/policy)')
  .option('--keep', 'keep the temp dir (data, keys, audit files) afterwards')
  .option(
    '--federation',
    'run the cross-domain demo instead: two trust domains, the chain crossing between them',
  )
  .addHelpText(
    'after',
    `
Starts a server (SQLite, its own CA, a local OIDC issuer for principals, the Cedar policies), registers four
workloads that attest with join tokens, opens a task session for alice, delegates it to a tool-runner, calls
service A over mutual TLS (gRPC) and A calls service B over https with the delegated SVID; B prints the chain
alice -> planner -> tool-runner -> service-a it read from the certificate and the Cedar decision. Then the
session ends, the next call is refused (ERR_REVOKED), and lanyard audit verify / trace print the audit trail.

With --federation: two servers of trust domains a.demo and b.demo, B federating with A; alice's planner in A
delegates to B's tool-runner, and B's service prints the chain alice -> A's planner -> B's tool-runner -> B's
service; a replayed grant and a link forged by B's CA are refused with their codes.

Nothing but loopback traffic; the temp dir is removed at the end unless --keep. Prints each step it checked
and "Demo passed" on success (exit 0); otherwise "Demo FAILED: <step>: <why>" (exit 1).`,
  )
  .exitOverride();

try {
  program.parse(process.argv);
} catch (e) {
  // --help is an "error" to commander and a success to the user; anything else is a usage error.
  process.exit(e instanceof CommanderError && e.exitCode === 0 ? 0 : 2);
}
const opts = program.opts<{ policyDir?: string; keep?: boolean; federation?: boolean }>();
(opts.federation === true
  ? runFederationDemo({ keep: opts.keep === true })
  : runDemo({
      keep: opts.keep === true,
      ...(opts.policyDir !== undefined && { policyDir: opts.policyDir }),
    })
).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stdout.write(`\n${demoFailureText(e)}\n`);
    process.exit(1);
  },
);
