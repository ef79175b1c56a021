import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
    .version(packageVersion(), '-V, --version', 'print the Lanyard version')
    .showHelpAfterError()
    .exitOverride();
  registerCommands(program);
  return program;
}

/**
 * The version in package.json, read at run time: src/cli and dist/cli are both two levels below the package
 * root, and the build does not copy package.json into dist/.
 */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    version?: unknown;
  };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

/**
 * A reader that stops early (`lanyard svid inspect ... | head -1`) closes the pipe, and the next write to it
 * fails with EPIPE, which Node raises as an unhandled 'error' event: a stack trace and exit 1 for what is
 * a normal end. Exit quietly instead, as cat and grep do under a shell: with 0, or with the failure code a
 * command already set (the reader missing output does not turn a failure into a success).
 */
export function exitQuietlyOnEpipe(stream: NodeJS.WritableStream & NodeJS.EventEmitter): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  });
}

/** Entry point used by bin/lanyard.js. Usage errors exit 2; command failures set their own exit code. */
export async function main(argv: string[]): Promise<void> {
  exitQuietlyOnEpipe(process.stdout);
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
