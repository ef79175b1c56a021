import { EXIT_REJECTED, EXIT_USAGE } from './exit-codes';

/** A failure the CLI reports as one line on stderr with a chosen exit code, never as a stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_REJECTED,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, EXIT_USAGE);
}
