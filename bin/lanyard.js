#!/usr/bin/env node
'use strict';
// Runs the compiled CLI (npm run build) when dist/ was built from this version and commit (bin/build-stamp.js);
// otherwise the TypeScript sources through tsx. LANYARD_FROM_SOURCE=1 forces the sources (tests set it, and
// so should anyone running edits not yet built).
const fs = require('node:fs');
const path = require('node:path');
const { distStaleReason } = require('./build-stamp');
const root = path.join(__dirname, '..');
const forced = process.env.LANYARD_FROM_SOURCE === '1';
const sources = path.join(root, 'src', 'cli', 'main.ts');
let cli;
if (!forced && (distStaleReason(root) === null || !hasTsx() || !fs.existsSync(sources))) {
  // Without tsx (an installed package: it is a devDependency) the sources cannot run: dist/ is what shipped.
  cli = require(path.join(root, 'dist', 'cli', 'main.js'));
} else {
  // tsx finds tsconfig.json from the working directory; point it at ours so decorators compile the same way.
  process.env.TSX_TSCONFIG_PATH = path.join(root, 'tsconfig.json');
  require('tsx/cjs');
  cli = require(sources);
}
cli.main(process.argv).catch((e) => {
  process.stderr.write(`lanyard: ${e && e.message ? e.message : String(e)}\n`);
  process.exitCode = 1;
});

function hasTsx() {
  try {
    require.resolve('tsx/cjs');
    return true;
  } catch {
    return false;
  }
}
