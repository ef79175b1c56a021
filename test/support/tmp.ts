/**
 * Temp dirs for tests. Every dir made here is removed when the mocha run ends (the root hook in test/setup.ts),
 * so a failing test leaves nothing behind; tests that want the space back sooner call `removeDir`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const made = new Set<string>();

/** A fresh dir named `lanyard-<name>-XXXXXX` under the OS temp dir (short: agents put Unix sockets in it). */
export function tempDir(name = 'test'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lanyard-${name}-`));
  made.add(dir);
  return dir;
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  made.delete(dir);
}

/** Removes every dir `tempDir` made that is still there. */
export function removeTempDirs(): void {
  for (const dir of [...made]) removeDir(dir);
}
