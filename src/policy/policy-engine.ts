/**
 * The policy engine: the current PolicySet loaded from files, reloaded when they change.
 *
 * - Load fails (PolicyError naming the file) when a file is missing or a policy does not parse or validate:
 *   a server must not start on a policy it cannot enforce.
 * - Reload: fs.watch on the files' directories (debounced, since editors write in several steps) plus a
 *   poll, because fs.watch misses events on some file systems and after an editor replaces a file by rename.
 *   A reload that fails keeps the last good set and is logged; the same broken content is reported once.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compilePolicies } from './compile';
import { readPolicyFiles, type PolicyFile } from './policy-files';
import { type CallRequest, type CedarDecision, PolicySet, type PolicySetOptions } from './policy-set';

/** What the engine logs through; a pino logger fits. */
export interface PolicyLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface PolicyEngineOptions {
  /** Policy files and/or directories of `*.cedar` files. */
  sources: readonly string[];
  /** Reload when the files change. Default true. */
  watch?: boolean;
  /** Quiet period after a change event before reloading. Default 200 ms. */
  debounceMs?: number;
  /** How often the files are re-read in case a change event was missed. Default 5000 ms; 0 = never. */
  pollIntervalMs?: number;
  /** Use fs.watch events (default true); false leaves only the poll, for file systems without events. */
  fsEvents?: boolean;
  /** Decisions each loaded set remembers (PolicySetOptions); default 4096, 0 = none. */
  decisionCacheSize?: number;
  logger?: PolicyLogger;
}

export interface PolicyEngineEvents {
  /** A new policy set is current, loaded from `files`. */
  reload: [version: string, previous: string, files: readonly string[]];
  /** A reload failed; the previous set stays current. */
  reloadFailed: [err: Error];
}

export const POLICY_ENGINE_DEFAULTS = { debounceMs: 200, pollIntervalMs: 5000 } as const;

export class PolicyEngine extends EventEmitter<PolicyEngineEvents> {
  private current: PolicySet;
  private fingerprint: string;
  private readonly sources: readonly string[];
  private readonly logger: PolicyLogger | undefined;
  private readonly watchers: fs.FSWatcher[] = [];
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly setOptions: PolicySetOptions;

  private constructor(options: PolicyEngineOptions, set: PolicySet, fingerprint: string) {
    super();
    this.sources = options.sources.map((s) => path.resolve(s));
    this.logger = options.logger;
    this.setOptions = setOptionsOf(options);
    this.current = set;
    this.fingerprint = fingerprint;
  }

  /** Reads, validates and loads the policies. @throws PolicyError naming the file and the error. */
  static load(options: PolicyEngineOptions): PolicyEngine {
    const files = readPolicyFiles(options.sources);
    const engine = new PolicyEngine(
      options,
      new PolicySet(compilePolicies(files), setOptionsOf(options)),
      fingerprintOf(files),
    );
    engine.logger?.info(
      { policyVersion: engine.version, files: engine.current.compiled.files },
      'policies loaded',
    );
    if (options.watch !== false) engine.startWatching(options);
    return engine;
  }

  get version(): string {
    return this.current.version;
  }

  /** The set in force now; keep it to make several decisions under one version. */
  snapshot(): PolicySet {
    return this.current;
  }

  /** A request at a hop, under the current set. */
  evaluate(req: CallRequest): CedarDecision {
    return this.current.evaluateCall(req);
  }

  /**
   * Re-reads the files and swaps in the new set when it loads; otherwise keeps the current one.
   * @returns true when a new set is current.
   */
  reload(): boolean {
    if (this.closed) return false;
    let files: PolicyFile[];
    let fingerprint: string;
    try {
      files = readPolicyFiles(this.sources);
      fingerprint = fingerprintOf(files);
      if (fingerprint === this.fingerprint) return false;
    } catch (e) {
      return this.failed(e, undefined);
    }
    let next: PolicySet;
    try {
      next = new PolicySet(compilePolicies(files), this.setOptions);
    } catch (e) {
      return this.failed(e, fingerprint);
    }
    this.fingerprint = fingerprint;
    const previous = this.current.version;
    this.current = next;
    if (next.version !== previous) {
      this.logger?.info({ policyVersion: next.version, previous }, 'policies reloaded');
      this.emit('reload', next.version, previous, next.compiled.files);
    }
    return next.version !== previous;
  }

  /** Stops watching and polling. Idempotent; the last set keeps answering. */
  close(): void {
    this.closed = true;
    clearTimeout(this.debounce);
    clearInterval(this.poll);
    for (const w of this.watchers.splice(0)) w.close();
  }

  private changedOnDisk(): boolean {
    try {
      return fingerprintOf(readPolicyFiles(this.sources)) !== this.fingerprint;
    } catch (e) {
      return `error:${(e as Error).message}` !== this.fingerprint;
    }
  }

  private failed(e: unknown, fingerprint: string | undefined): false {
    const err = e instanceof Error ? e : new Error(String(e));
    // Report one broken content once, not at every poll.
    const key = fingerprint ?? `error:${err.message}`;
    if (key !== this.fingerprint) {
      this.fingerprint = key;
      this.logger?.warn(
        { err: err.message, policyVersion: this.current.version },
        'policy reload failed; keeping the current policies',
      );
      this.emit('reloadFailed', err);
    }
    return false;
  }

  private startWatching(options: PolicyEngineOptions): void {
    const debounceMs = options.debounceMs ?? POLICY_ENGINE_DEFAULTS.debounceMs;
    let pending = false;
    const schedule = (): void => {
      clearTimeout(this.debounce);
      pending = true;
      this.debounce = setTimeout(() => {
        pending = false;
        this.reload();
      }, debounceMs);
      this.debounce.unref();
    };
    // A file source is watched through its directory: editors often replace the file, which ends a watch on it.
    const dirs = new Set(this.sources.map((s) => (isDirectory(s) ? s : path.dirname(s))));
    for (const dir of options.fsEvents === false ? [] : dirs) {
      try {
        const w = fs.watch(dir, { persistent: false }, schedule);
        w.on('error', () => w.close());
        this.watchers.push(w);
      } catch (e) {
        this.logger?.warn({ dir, err: (e as Error).message }, 'cannot watch policy directory; polling only');
      }
    }
    const pollMs = options.pollIntervalMs ?? POLICY_ENGINE_DEFAULTS.pollIntervalMs;
    if (pollMs > 0) {
      // A poll that sees new bytes waits out the debounce too, so a file caught mid-write (say, truncated to
      // empty, which is a valid deny-everything set) is read again once the writer is done.
      this.poll = setInterval(() => {
        if (!pending && this.changedOnDisk()) schedule();
      }, pollMs);
      this.poll.unref();
    }
  }
}

function setOptionsOf(options: PolicyEngineOptions): PolicySetOptions {
  return options.decisionCacheSize !== undefined ? { decisionCacheSize: options.decisionCacheSize } : {};
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** What was read, byte for byte: a reload that reads the same bytes has nothing to do. */
function fingerprintOf(files: readonly PolicyFile[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(`${f.path}\0${f.text}\0`);
  return h.digest('hex');
}
