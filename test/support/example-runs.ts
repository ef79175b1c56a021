/**
 * The examples/ programs and what each must print, for the two places that run them: the integration test
 * (test/integration/examples, against the repository's dist/) and check:dist (against the package installed
 * from its tarball). Each example is a separate Node process given the server, the bundle and a join token per
 * workload in its environment; `register` creates an entry and returns a token for it (over the admin API or
 * through the CLI).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';

/** An entry as `lanyard entry create` takes it; delegates are names (`agents/tool-runner`), not IDs. */
export interface ExampleEntry {
  allowedScopes?: string[];
  allowedDelegates?: string[];
  maxDelegationDepth?: number;
}

export interface ExampleRun {
  file: string;
  title: string;
  /** LANYARD_TOKEN_<role> -> the workload path (under the trust domain) and its entry. */
  workloads: Record<string, { name: string; entry?: ExampleEntry }>;
  /** Asserts on stdout; `id` makes the SPIFFE ID of a workload path. */
  check(stdout: string, id: (name: string) => string): void;
}

const line = (stdout: string, re: string): RegExpExecArray => {
  const m = new RegExp(`^${re}$`, 'm').exec(stdout);
  assert.ok(m, `expected a line /${re}/ in:\n${stdout}`);
  return m;
};
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

export const EXAMPLE_RUNS: readonly ExampleRun[] = [
  {
    file: 'express-service.ts',
    title: 'express-service: serves the reader with orders:read, refuses the agent without it (403)',
    workloads: {
      SERVICE: { name: 'services/orders' },
      READER: { name: 'agents/reader', entry: { allowedScopes: ['orders:read'] } },
      OTHER: { name: 'agents/other' },
    },
    check(stdout, id) {
      line(stdout, `orders service ${esc(id('services/orders'))} on https://127\\.0\\.0\\.1:\\d+`);
      const served = line(stdout, `as ${esc(id('agents/reader'))}: 200 (.*)`);
      assert.deepEqual(JSON.parse(served[1]!), {
        order: '42',
        servedTo: id('agents/reader'),
        scopes: ['orders:read'],
      });
      const refused = line(stdout, `as ${esc(id('agents/other'))}: 403 (.*)`);
      assert.equal((JSON.parse(refused[1]!) as { error: { code: string } }).error.code, 'ERR_UNAUTHORIZED');
    },
  },
  {
    file: 'grpc-hop.ts',
    title: 'grpc-hop: the service sees the planner and its scopes; the planner gets the answer',
    workloads: {
      SERVICE: { name: 'services/search' },
      CALLER: { name: 'agents/planner', entry: { allowedScopes: ['search:query'] } },
    },
    check(stdout, id) {
      line(stdout, `service: ${esc(id('agents/planner'))} asked "open tickets" \\(scopes search:query\\)`);
      line(stdout, `planner: ${esc(id('services/search'))} answered \\["result for open tickets"\\]`);
    },
  },
  {
    file: 'delegation-handoff.ts',
    title: 'delegation-handoff: the service verifies lead -> tool-runner from the delegated SVID',
    workloads: {
      PLANNER: {
        name: 'agents/lead',
        entry: {
          allowedScopes: ['tickets:read', 'tickets:write'],
          allowedDelegates: ['agents/tool-runner'],
          maxDelegationDepth: 1,
        },
      },
      TOOL_RUNNER: { name: 'agents/tool-runner', entry: { allowedScopes: ['tickets:read'] } },
      SERVICE: { name: 'services/tickets' },
    },
    check(stdout, id) {
      const session = line(stdout, 'planner: session (\\S+), scopes tickets:read')[1]!;
      const [lead, runner] = [esc(id('agents/lead')), esc(id('agents/tool-runner'))];
      line(stdout, `tool-runner: delegated SVID from ${lead} \\(session ${esc(session)}\\)`);
      // No principal token: the planner is its own principal, then the chain planner -> tool runner.
      line(
        stdout,
        `service: GET /tickets/open for ${lead} -> ${lead} -> ${runner} \\(root session ${esc(session)}\\)`,
      );
      line(stdout, `tool-runner: service answered 200 \\{"open":3,"actingFor":"${lead}"\\}`);
    },
  },
];

export interface ExampleEnvironment {
  /** Where examples/*.ts are, and the directory `lanyard` resolves from (the package, or a consumer of it). */
  examplesDir: string;
  cwd: string;
  /** How node loads TypeScript: e.g. ['--require', '/abs/node_modules/tsx/dist/cjs/index.cjs']. */
  nodeArgs: string[];
  server: string;
  trustDomain: string;
  bundleFile: string;
  /** Creates the entry and returns a join token for it. */
  register(spiffeId: string, entry: ExampleEntry): Promise<string>;
}

/** Registers the example's workloads, runs it to its exit, and checks its exit code and output. */
export async function runExample(run: ExampleRun, env: ExampleEnvironment): Promise<string> {
  const id = (name: string): string => `spiffe://${env.trustDomain}/${name}`;
  const tokens: Record<string, string> = {};
  for (const [role, { name, entry = {} }] of Object.entries(run.workloads)) {
    const withIds = { ...entry, allowedDelegates: entry.allowedDelegates?.map(id) };
    tokens[`LANYARD_TOKEN_${role}`] = await env.register(id(name), withIds);
  }
  const child = spawn(process.execPath, [...env.nodeArgs, path.join(env.examplesDir, run.file)], {
    cwd: env.cwd,
    env: {
      ...process.env,
      LANYARD_SERVER: env.server,
      LANYARD_TRUST_DOMAIN: env.trustDomain,
      LANYARD_BUNDLE: env.bundleFile,
      ...tokens,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  assert.equal(code, 0, `${run.file} exited ${code}: ${stderr}${stdout}`);
  run.check(stdout, id);
  return stdout;
}
