#!/usr/bin/env node
'use strict';
// Runs the compiled CLI (npm run build) when it is current; otherwise the TypeScript sources through tsx.
const path = require('node:path');
const fs = require('node:fs');
const root = path.join(__dirname, '..');
const compiled = path.join(root, 'dist', 'cli', 'main.js');
let cli;
// LANYARD_FROM_SOURCE=1 forces the sources (tests set it, so dist/ never answers for src/).
if (process.env.LANYARD_FROM_SOURCE !== '1' && distIsCurrent()) {
  cli = require(compiled);
} else {
  // tsx finds tsconfig.json from the working directory; point it at ours so decorators compile the same way.
  process.env.TSX_TSCONFIG_PATH = path.join(root, 'tsconfig.json');
  require('tsx/cjs');
  cli = require(path.join(root, 'src', 'cli', 'main.ts'));
}
cli.main(process.argv).catch((e) => {
  process.stderr.write(`lanyard: ${e && e.message ? e.message : String(e)}\n`);
  process.exitCode = 1;
});

/**
 * dist/ answers only when the build stamp (scripts/stamp-dist.ts: taken when npm run build starts, published
 * when it ends) is newer than every file under src/: a git pull or an edit after the last build, or during
 * it, must not leave yesterday's code running. About 250 stats.
 */
function distIsCurrent() {
  // Without tsx (an installed package: it is a devDependency) the sources cannot run, and npm does not keep
  // file times on install, so the stamp proves nothing there: dist/ is what was shipped.
  try {
    require.resolve('tsx/cjs');
  } catch {
    return fs.existsSync(compiled);
  }
  let builtAt;
  try {
    builtAt = fs.statSync(path.join(root, 'dist', '.build-stamp')).mtimeMs;
  } catch {
    return false;
  }
  if (!fs.existsSync(compiled)) return false;
  const newer = (dir) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return false;
    }
    return entries.some((e) => {
      const p = path.join(dir, e.name);
      return e.isDirectory() ? newer(p) : fs.statSync(p).mtimeMs > builtAt;
    });
  };
  return !newer(path.join(root, 'src'));
}
