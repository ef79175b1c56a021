/**
 * `npm run demo`: Lanyard end to end on one machine, everything on 127.0.0.1 in a temp dir (src/demo/run-demo.ts,
 * the same run as `lanyard demo`). Exits 0 only when every step behaved as expected, 1 otherwise, naming the
 * step. `--policy-dir <dir>` loads other Cedar policies; `--keep` keeps the temp dir.
 */
import { demoFailureText, runDemo } from '../src/demo/run-demo';

function argValue(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const policyDir = argValue('--policy-dir');
runDemo({ keep: process.argv.includes('--keep'), ...(policyDir !== undefined && { policyDir }) }).then(
  () => process.exit(0),
  (e: unknown) => {
    process.stdout.write(`\n${demoFailureText(e)}\n`);
    process.exit(1);
  },
);
