#!/usr/bin/env node
'use strict';
// Runs the compiled CLI (npm run build). In a checkout without dist/, runs the TypeScript sources through tsx.
const path = require('node:path');
const fs = require('node:fs');
const compiled = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
let cli;
// LANYARD_FROM_SOURCE=1 forces the sources (tests set it, so a stale dist/ never answers for src/).
if (fs.existsSync(compiled) && process.env.LANYARD_FROM_SOURCE !== '1') {
  cli = require(compiled);
} else {
  // tsx finds tsconfig.json from the working directory; point it at ours so decorators compile the same way.
  process.env.TSX_TSCONFIG_PATH = path.join(__dirname, '..', 'tsconfig.json');
  require('tsx/cjs');
  cli = require(path.join(__dirname, '..', 'src', 'cli', 'main.ts'));
}
cli.main(process.argv).catch((e) => {
  process.stderr.write(`lanyard: ${e && e.message ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
