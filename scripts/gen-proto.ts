/**
 * Generates TypeScript for proto/ into src/gen/ with ts-proto, or (--check) regenerates into a temp dir and
 * fails when the committed src/gen differs. buf (an npm package) plays protoc here, so no system install is
 * needed; it also lints the .proto files (naming, numbering) in both modes.
 *
 *   npm run proto         regenerate src/gen
 *   npm run proto:check   exit 1 when src/gen is stale (CI)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const protoDir = path.join(root, 'proto');
const genDir = path.join(root, 'src', 'gen');
const bin = (name: string): string => path.join(root, 'node_modules', '.bin', name);

/**
 * ts-proto options, and why:
 * - outputServices=grpc-js: service definitions, server handler types and clients for @grpc/grpc-js.
 * - env=node: bytes are Buffer, which the crypto and TLS APIs take directly.
 * - useDate=true: google.protobuf.Timestamp is a Date in TypeScript.
 * - oneof=unions-value: a oneof is a tagged union ({ $case, value }) that strict TS can narrow.
 * - esModuleInterop=true: matches tsconfig.
 */
const TS_PROTO_OPTS = [
  'outputServices=grpc-js',
  'env=node',
  'useDate=true',
  'oneof=unions-value',
  'esModuleInterop=true',
];

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
}

function generate(outDir: string): void {
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const template = {
    version: 'v2',
    plugins: [{ local: bin('protoc-gen-ts_proto'), out: outDir, opt: TS_PROTO_OPTS }],
  };
  // The file is not formatted by prettier (src/gen is ignored) and not linted: generated code is never
  // edited by hand.
  run(bin('buf'), ['generate', 'proto', '--template', JSON.stringify(template)]);
}

/** Relative paths of every file under dir, sorted. */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

function diff(expectedDir: string, actualDir: string): string[] {
  const expected = listFiles(expectedDir);
  const actual = listFiles(actualDir);
  const problems: string[] = [];
  for (const f of expected) {
    if (!actual.includes(f)) problems.push(`missing: src/gen/${f}`);
    else if (!fs.readFileSync(path.join(expectedDir, f)).equals(fs.readFileSync(path.join(actualDir, f))))
      problems.push(`stale:   src/gen/${f}`);
  }
  for (const f of actual) if (!expected.includes(f)) problems.push(`extra:   src/gen/${f}`);
  return problems;
}

function main(): void {
  const check = process.argv.includes('--check');
  console.log(`lint: buf lint ${path.relative(root, protoDir)}`);
  run(bin('buf'), ['lint', 'proto']);

  if (!check) {
    generate(genDir);
    const files = listFiles(genDir);
    console.log(`generated ${files.length} files into src/gen with ts-proto (${TS_PROTO_OPTS.join(', ')}):`);
    for (const f of files) console.log(`  src/gen/${f}`);
    return;
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-proto-check-'));
  try {
    generate(tmp);
    const problems = diff(tmp, genDir);
    if (problems.length > 0) {
      console.error('src/gen is out of date with proto/ (run `npm run proto` and commit):');
      for (const p of problems) console.error(`  ${p}`);
      process.exitCode = 1;
      return;
    }
    console.log(`src/gen is up to date with proto/ (${listFiles(tmp).length} files compared)`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
