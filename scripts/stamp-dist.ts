/**
 * Brackets npm run build: `begin` writes dist/.build-stamp.next before tsc reads the sources, `end` renames it
 * to dist/.build-stamp once tsc succeeded. bin/lanyard.js compares the stamp's mtime with src/: taking it at
 * the start means a file saved while tsc runs counts as newer than the build, and the rename keeps that time.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dist = join(__dirname, '..', 'dist');
const next = join(dist, '.build-stamp.next');
const stamp = join(dist, '.build-stamp');

switch (process.argv[2]) {
  case 'begin':
    mkdirSync(dist, { recursive: true });
    // A failed build must not leave an older stamp vouching for a half-written dist/.
    rmSync(stamp, { force: true });
    writeFileSync(next, `build started ${new Date().toISOString()}\n`);
    break;
  case 'end':
    renameSync(next, stamp);
    break;
  default:
    process.stderr.write('usage: stamp-dist.ts begin|end\n');
    process.exit(2);
}
