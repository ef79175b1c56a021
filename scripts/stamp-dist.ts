/**
 * The last step of npm run build: the mtime of dist/.build-stamp tells bin/lanyard.js when dist/ was built,
 * so a source file changed since then sends it back to the sources instead of running stale compiled code.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

writeFileSync(join(__dirname, '..', 'dist', '.build-stamp'), `built ${new Date().toISOString()}\n`);
