/**
 * `audit export` and `audit verify` (--server, and --file of the export) over chains of millions of records,
 * with the memory of every process measured: is it bounded? The server runs as its own process on a temp data
 * dir; before each size the server is stopped and the chain seeded up to that size (scripts/bench-audit-seed.ts:
 * the project's own chain and checkpoint code, the server's own audit key), then the server is started again and
 * the three commands run one after the other as processes (`node bin/lanyard.js`, the sources under tsx).
 *
 * With --heap MiB every process (server and CLI) runs with --max-old-space-size=MiB: a process that keeps
 * something per record dies of heap exhaustion at a large enough chain; one that does not runs at every size
 * with the same peak. Per command: wall time, records/s, the CLI's peak RSS (/usr/bin/time), and the server's
 * peak RSS during the command (VmHWM after resetting it) and its RSS after.
 *
 *   tsx scripts/bench-audit-stream.ts --sizes 1000000,3000000,10000000 --heap 128
 *   tsx scripts/bench-audit-stream.ts --sizes 100000 --checkpoint-every 100
 * Figures, not assertions: tests never time anything.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AdminClient } from '../src/server/admin-client';
import { BIN, runProcess, spawnServer, type ServerProcess } from '../test/support/server-process';
import { seedAuditDataDir } from './bench-audit-seed';
import { processMemory } from './bench-server-process';

const argValue = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const SIZES = (argValue('--sizes') ?? '1000000')
  .split(',')
  .map(Number)
  .sort((a, b) => a - b);
if (SIZES.some((n) => !Number.isSafeInteger(n) || n <= 0)) throw new Error('--sizes: positive integers');
const HEAP_MIB = argValue('--heap');
const CHECKPOINT_EVERY = Number(argValue('--checkpoint-every') ?? 1000);
/** Commands to run at each size (default all three). */
const COMMANDS = new Set((argValue('--commands') ?? 'export,verify-file,verify-server').split(','));
const NODE_OPTIONS = [process.env.NODE_OPTIONS ?? '', HEAP_MIB ? `--max-old-space-size=${HEAP_MIB}` : '']
  .join(' ')
  .trim();

const out = (s: string): boolean => process.stdout.write(s);
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

interface Run {
  ms: number;
  cliPeakKiB: number;
  serverPeak: number;
  serverRss: number;
  stdout: string;
}

function configYaml(dataDir: string): string {
  return [
    'trust_domain: bench.local',
    `data_dir: ${JSON.stringify(dataDir)}`,
    'listen_address: 127.0.0.1:0',
    '',
  ].join('\n');
}

async function startServer(configFile: string): Promise<ServerProcess> {
  const proc = spawnServer(['--config', configFile], { NODE_OPTIONS });
  await proc.ready;
  return proc;
}

async function stopServer(proc: ServerProcess): Promise<void> {
  proc.child.kill('SIGTERM');
  const code = await proc.exited;
  if (code !== 0) throw new Error(`server exit ${code}\n${proc.stderr()}`);
}

/** One CLI command as its own process, the server's peak reset before and read after. */
async function cli(proc: ServerProcess, args: string[]): Promise<Run> {
  const pid = proc.child.pid!;
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  const t0 = process.hrtime.bigint();
  const r = await runProcess('/usr/bin/time', ['-f', 'maxrss=%M', process.execPath, BIN, ...args], {
    env: { ...process.env, LANYARD_FROM_SOURCE: '1', NODE_OPTIONS },
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const mem = processMemory(pid);
  if (r.code !== 0) throw new Error(`lanyard ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return {
    ms,
    cliPeakKiB: Number(/maxrss=(\d+)/.exec(r.stderr)?.[1] ?? NaN),
    serverPeak: mem.peak,
    serverRss: mem.rss,
    stdout: r.stdout,
  };
}

function report(what: string, records: number, r: Run, extra = ''): void {
  const rate = records > 0 ? `${Math.round((records / r.ms) * 1000).toLocaleString('en-US')}/s` : '';
  out(
    `  ${what.padEnd(24)} ${(r.ms / 1000).toFixed(1).padStart(7)} s ${rate.padStart(10)}  CLI peak ${mib(r.cliPeakKiB * 1024).padStart(8)}  server peak ${mib(r.serverPeak).padStart(8)}, after ${mib(r.serverRss).padStart(8)}${extra}\n`,
  );
}

async function measure(configFile: string, dir: string, bundleFile: string, records: number): Promise<void> {
  const proc = await startServer(configFile);
  try {
    const socket = ['--socket', path.join(dir, 'admin.sock')];
    const file = path.join(dir, 'export.jsonl');
    out(
      `${records.toLocaleString('en-US')} records (server pid ${proc.child.pid}, started: RSS ${mib(processMemory(proc.child.pid!).rss)})\n`,
    );
    if (COMMANDS.has('export') || COMMANDS.has('verify-file')) {
      const e = await cli(proc, ['audit', 'export', '--out', file, ...socket]);
      report('audit export --out', records, e, `, ${mib(fs.statSync(file).size)} written`);
      if (COMMANDS.has('verify-file')) {
        const v = await cli(proc, ['audit', 'verify', '--file', file, '--bundle', bundleFile]);
        report('audit verify --file', records, v, `: ${v.stdout.trim().slice(0, 90)}`);
      }
      fs.rmSync(file, { force: true });
    }
    if (COMMANDS.has('verify-server')) {
      const v = await cli(proc, ['audit', 'verify', '--server', ...socket]);
      report('audit verify --server', records, v, `: ${v.stdout.trim().slice(0, 90)}`);
    }
  } finally {
    await stopServer(proc);
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-bench-audit-stream-'));
  const configFile = path.join(dir, 'server.yaml');
  fs.writeFileSync(configFile, configYaml(dir), { mode: 0o600 });
  out(
    `audit export/verify at ${SIZES.join(', ')} records; NODE_OPTIONS="${NODE_OPTIONS}"; a checkpoint every ` +
      `${CHECKPOINT_EVERY}; load average ${os.loadavg()[0]!.toFixed(1)} at ${new Date().toISOString()}\n`,
  );
  try {
    // First start: the data dir, the audit key and the first checkpoint; the bundle carries the audit keys.
    const bundleFile = path.join(dir, 'bundle.json');
    {
      const proc = await startServer(configFile);
      const admin = new AdminClient(path.join(dir, 'admin.sock'));
      try {
        fs.writeFileSync(bundleFile, (await admin.getBundle()).bundle!.spiffeBundleJson);
      } finally {
        admin.close();
        await stopServer(proc);
      }
    }
    await measure(configFile, dir, bundleFile, 0);
    let seeded = 0;
    for (const size of SIZES) {
      const r = seedAuditDataDir(dir, size - seeded, { checkpointEvery: CHECKPOINT_EVERY, batch: 200_000 });
      out(
        `seeded ${(size - seeded).toLocaleString('en-US')} more (head ${r.headSeq}): rows ${(r.writeMs / 1000).toFixed(1)} s, ` +
          `indexes ${(r.indexMs / 1000).toFixed(1)} s, ${r.checkpoints} checkpoints; database ${mib(fs.statSync(path.join(dir, 'lanyard.db')).size)} ` +
          `(load ${os.loadavg()[0]!.toFixed(1)})\n`,
      );
      seeded = size;
      await measure(configFile, dir, bundleFile, r.headSeq);
    }
  } finally {
    if (process.argv.includes('--keep')) out(`(data dir kept: ${dir})\n`);
    else fs.rmSync(dir, { recursive: true, force: true });
    out(`done at ${new Date().toISOString()}, load average ${os.loadavg()[0]!.toFixed(1)}\n`);
  }
}

void main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
