/**
 * The built package (dist/) for tests that use it as a consumer does, through `lanyard` and its subpath exports
 * (package self-reference): builds it first when any file under src/ is newer than the last build's stamp, so
 * a test never checks yesterday's dist/ against today's sources.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths';

export { REPO_ROOT };

function newestUnder(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestUnder(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function builtAt(): number | undefined {
  try {
    return statSync(join(REPO_ROOT, 'dist', '.build-stamp')).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Runs `npm run build` unless dist/ is at least as new as every source file. Takes a minute when it builds. */
export function ensureBuilt(): void {
  const stamp = builtAt();
  if (stamp !== undefined && stamp >= newestUnder(join(REPO_ROOT, 'src'))) return;
  execFileSync('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'ignore' });
}
