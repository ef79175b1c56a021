/**
 * `lanyard server run` as a real child process (`node bin/lanyard.js`, from source), for tests of what only a
 * process shows: signals, exit codes, what it prints.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import assert from 'node:assert/strict';
import { EXIT_OK } from '../../src/cli/exit-codes';
import { BIN } from './paths';

export { BIN };

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  /** JSON log lines so far. */
  stdout(): string;
  /** The banner and CLI errors so far. */
  stderr(): string;
  /** Resolves with the public TLS address once the banner is printed; rejects when the process exits first. */
  ready: Promise<string>;
  /** The exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Resolves when stdout has a JSON log line with this `msg`. */
  logged(msg: string): Promise<void>;
  /** SIGKILL when still running: a failed assertion must not leave the server behind. */
  kill(): void;
}

/** `command args` as `sh` runs it after `umask <umask>` (files a process creates are masked by it). */
export function underUmask(umask: string, command: string, args: string[]): [string, string[]] {
  return ['sh', ['-c', `umask ${umask} && exec "$@"`, 'sh', command, ...args]];
}

export function spawnServer(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  options: {
    umask?: string;
    /**
     * Options of the server's node itself, before the script (e.g. --cpu-prof): node refuses some of them in
     * NODE_OPTIONS ("--cpu-prof is not allowed in NODE_OPTIONS").
     */
    nodeArgs?: readonly string[];
  } = {},
): ServerProcess {
  const argv = [...(options.nodeArgs ?? []), BIN, 'server', 'run', ...args];
  const [command, commandArgs] =
    options.umask === undefined
      ? [process.execPath, argv]
      : underUmask(options.umask, process.execPath, argv);
  const child = spawn(command, commandArgs, {
    env: {
      ...process.env,
      LANYARD_FROM_SOURCE: '1',
      LANYARD_DATA_DIR: '',
      // A free port, so a test never collides with a dev server (or another run) on the default 127.0.0.1:8081.
      LANYARD_LISTEN_ADDRESS: '127.0.0.1:0',
      ...env,
    },
  });
  let out = '';
  let err = '';
  const waiters: (() => void)[] = [];
  const poke = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    poke();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    poke();
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  let done = false;
  void exited.then(() => {
    done = true;
    poke();
  });
  const until = <T>(test: () => T | undefined, what: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const v = test();
        if (v !== undefined) resolve(v);
        else if (done) reject(new Error(`server exited before ${what}\nstderr: ${err}\nstdout: ${out}`));
        else waiters.push(check);
      };
      check();
    });
  const ready = until(() => {
    const m = /attestation\/bundle \(TLS\):\s+(\S+)/.exec(err);
    return m && err.includes('Stop with') ? m[1] : undefined;
  }, 'the banner');
  // Callers that only wait for the exit must not see an unhandled rejection.
  ready.catch(() => undefined);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    ready,
    exited,
    logged: (msg) =>
      until(() => (logLines(out).some((l) => l.msg === msg) ? true : undefined), `logging "${msg}"`).then(
        () => undefined,
      ),
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The JSON log lines of `stdout` (pino), skipping anything that is not one. */
export function logLines(stdout: string): { msg?: string; [k: string]: unknown }[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string });
}

/** How a child process exited (null: killed by a signal) and what it printed. */
export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command` to its exit, collecting what it prints; a non-zero exit resolves, only a failed spawn rejects. */
export function runProcess(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; ignoreStdin?: boolean } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const stdin: 'ignore' | 'pipe' = options.ignoreStdin ? 'ignore' : 'pipe';
    const child = spawn(command, args, {
      cwd: options.cwd,
      stdio: [stdin, 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The environment a CLI child runs in: from source, with no data dir inherited from the developer's shell. */
const cliEnv = (env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  ...process.env,
  LANYARD_FROM_SOURCE: '1',
  LANYARD_DATA_DIR: '',
  ...env,
});

/** `node bin/lanyard.js ...args` (in `cwd` when given, after `umask <umask>` when given), as a person types it. */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  cwd?: string,
  umask?: string,
): Promise<CliResult> {
  const argv = [BIN, ...args];
  const [command, commandArgs] =
    umask === undefined ? [process.execPath, argv] : underUmask(umask, process.execPath, argv);
  return runProcess(command, commandArgs, { cwd, env: cliEnv(env) });
}

/** One line as a person pastes it: through sh, in `cwd`, with nothing rewritten. */
export function runSh(line: string, cwd: string): Promise<CliResult> {
  return runProcess('sh', ['-c', line], { cwd, env: cliEnv() });
}

/** A long-running `lanyard` command (e.g. `agent run`) as a child process, with what it prints so far. */
export interface LanyardProcess {
  child: ChildProcessWithoutNullStreams;
  /** stdout and stderr together. */
  output(): string;
  /** Resolves once the output contains `text`; rejects when the process exits first. */
  printed(text: string): Promise<void>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

export function spawnLanyard(args: string[], env: NodeJS.ProcessEnv = {}): LanyardProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env: cliEnv(env) });
  let out = '';
  const waiters: (() => void)[] = [];
  const poke = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.on('data', (d: Buffer) => ((out += d.toString()), poke()));
  child.stderr.on('data', (d: Buffer) => ((out += d.toString()), poke()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  let done = false;
  void exited.then(() => ((done = true), poke()));
  return {
    child,
    output: () => out,
    printed: (text) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (out.includes(text)) resolve();
          else if (done)
            reject(new Error(`lanyard ${args.join(' ')} exited before printing "${text}":\n${out}`));
          else waiters.push(check);
        };
        check();
      }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Asserts a CLI run exited 0, showing its output when it did not; returns the result for chaining. */
export function cliOk(r: CliResult): CliResult {
  assert.equal(r.code, EXIT_OK, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}
