/**
 * Brackets npm run build: `begin` empties dist/ and writes dist/.build-stamp.next (the package version and the
 * git commit the sources are at, bin/build-stamp.js) before tsc reads the sources; `end` renames it to
 * dist/.build-stamp once tsc succeeded. bin/lanyard.js runs dist/ only while the stamp matches the checkout; a
 * failed build leaves no stamp, so a half-written dist/ never answers. `check` exits 1 when dist/ would not
 * answer, saying why.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const stamps = require('../bin/build-stamp.js') as {
  currentStamp(root: string): { version: string | undefined; commit: string | null | undefined };
  distStaleReason(root: string): string | null;
};

const root = join(__dirname, '..');
const dist = join(root, 'dist');
const next = join(dist, '.build-stamp.next');
const stamp = join(dist, '.build-stamp');

switch (process.argv[2]) {
  case 'begin':
    // tsc only adds and overwrites: a module moved or deleted in src/ would otherwise linger in dist/ and ship.
    // Emptying dist/ also removes the old stamp, so a failed build never leaves one vouching for it.
    rmSync(dist, { recursive: true, force: true });
    mkdirSync(dist, { recursive: true });
    writeFileSync(
      next,
      `${JSON.stringify({ ...stamps.currentStamp(root), startedAt: new Date().toISOString() })}\n`,
    );
    break;
  case 'end':
    renameSync(next, stamp);
    break;
  case 'check': {
    const reason = stamps.distStaleReason(root);
    process.stdout.write(reason === null ? 'dist/ is current\n' : `dist/ is stale: ${reason}\n`);
    process.exit(reason === null ? 0 : 1);
    break;
  }
  default:
    process.stderr.write('usage: stamp-dist.ts begin|end|check\n');
    process.exit(2);
}
