import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands';
import { EXIT_USAGE } from './exit-codes';

/** Builds the `lanyard` program. Each command group lives in its own module under ./commands. */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('lanyard')
    .description(
      'Workload identity for AI agents: SPIFFE X.509-SVIDs carrying the agent run, principal and scope',
    )
    .showHelpAfterError()
    .exitOverride();
  registerCommands(program);
  return program;
}

/** Entry point used by bin/lanyard.js. Usage errors exit 2; command failures set their own exit code. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version are "errors" to commander; they are successes to the user.
      process.exitCode = e.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    throw e;
  }
}

if (require.main === module) {
  main(process.argv).catch((e: unknown) => {
    process.stderr.write(`lanyard: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  });
}
