/** Where things are, for tests that run the CLI or read the repository: one place, whatever a test's depth. */
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

/** The CLI entry point (runs src/ under tsx in tests: test/setup.ts sets LANYARD_FROM_SOURCE). */
export const BIN = path.join(REPO_ROOT, 'bin', 'lanyard.js');
