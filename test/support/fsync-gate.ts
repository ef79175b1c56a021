/**
 * Holding a SQLite store's WAL fsync (its `fsync` option) to see what is answered before a commit is durable.
 * The real fsync runs when the gate lets it through.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fsyncOnThreadpool, type FsyncHook } from '../../src/store/sqlite/wal-fsync';

/** Holds every fsync (the real one runs only when released) so a test can look at what was answered meanwhile. */
export class FsyncGate {
  readonly started: number[] = [];
  private held: (() => void)[] = [];
  private onStart: (() => void)[] = [];
  private holdingOn: boolean;

  constructor(options: { holding?: boolean } = {}) {
    this.holdingOn = options.holding ?? true;
  }

  readonly hook: FsyncHook = (fd) => {
    this.started.push(fd);
    for (const f of this.onStart.splice(0)) f();
    if (!this.holdingOn) return fsyncOnThreadpool(fd);
    return new Promise<void>((resolve) => this.held.push(resolve)).then(() => fsyncOnThreadpool(fd));
  };

  /** Resolves once `n` fsyncs have started in all. */
  async waitForStarts(n: number): Promise<void> {
    while (this.started.length < n) await new Promise<void>((r) => this.onStart.push(r));
  }

  get holding(): number {
    return this.held.length;
  }

  release(): void {
    for (const r of this.held.splice(0)) r();
  }

  /** Holds every later fsync again (after stopHolding, or a gate made with `holding: false`). */
  hold(): void {
    this.holdingOn = true;
  }

  /** Releases what it holds and lets every later fsync through. */
  stopHolding(): void {
    this.holdingOn = false;
    this.release();
  }
}

/** Whether `p` has settled after the event loop had a few turns to settle it. */
export async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await nextTurn();
  return done;
}
