/**
 * `lanyard policy ...`: for people writing Cedar policies, without a server.
 *   check   loads files or directories exactly as the server does; prints the version SVIDs will carry and
 *           each policy's id, or the first error naming its file, line and column (exit 1)
 *   schema  prints the Lanyard Cedar schema the policies are validated against
 */
import type { Command } from 'commander';
import { compilePolicies, LANYARD_CEDAR_SCHEMA, readPolicyFiles } from '../../policy';
import { runAction } from '../run-action';
import { printJson } from '../output';

export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('Cedar policies for issuance and for every hop');

  policy
    .command('check')
    .description('validate policy files (or directories of *.cedar) and print their version')
    .argument('<paths...>', 'policy files or directories, as in the server config policy.files')
    .option('--json', 'print JSON instead of text')
    .action(
      runAction((paths: string[], opts: { json?: boolean }) => {
        const set = compilePolicies(readPolicyFiles(paths));
        const ids = Object.keys(set.policies);
        if (opts.json) {
          printJson({ version: set.version, files: set.files, policies: set.origins });
          return;
        }
        process.stdout.write(
          `OK ${set.version}: ${ids.length} ${ids.length === 1 ? 'policy' : 'policies'} from ${set.files.length} ${
            set.files.length === 1 ? 'file' : 'files'
          }\n`,
        );
        for (const id of ids) process.stdout.write(`  ${id}  (${set.origins[id]})\n`);
      }),
    );

  policy
    .command('schema')
    .description(
      'print the Lanyard Cedar schema (entity types, actions, context) policies are checked against',
    )
    .action(
      runAction(() => {
        process.stdout.write(LANYARD_CEDAR_SCHEMA);
      }),
    );
}
