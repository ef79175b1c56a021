#!/usr/bin/env node
'use strict';
// Runs the compiled CLI (npm run build). In a checkout without dist/, runs the TypeScript sources through tsx.
const path = require('node:path');
const fs = require('node:fs');
const compiled = path.join(__dirname, '..', 'dist', 'cli', 'main.js');
let cli;
if (fs.existsSync(compiled)) {
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
