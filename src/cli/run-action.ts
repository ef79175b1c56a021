import { isLanyardError } from '../errors';
import { CliError } from './cli-error';
import { EXIT_REJECTED } from './exit-codes';

/**
 * Wraps a command action: typed errors become one stderr line (code and message) and an exit code,
 * so every command reports failure the same way and nothing prints a stack trace at a user.
 */
export function runAction<A extends unknown[]>(
  fn: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof CliError) {
        // An empty message means the command already reported the failure on stdout.
        if (e.message !== '') process.stderr.write(`lanyard: ${e.message}\n`);
        process.exitCode = e.exitCode;
        return;
      }
      if (isLanyardError(e)) {
        process.stderr.write(`lanyard: ${e.code}: ${e.message}\n`);
        process.exitCode = EXIT_REJECTED;
        return;
      }
      throw e;
    }
  };
}
