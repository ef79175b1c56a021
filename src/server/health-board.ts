/**
 * Several conditions each turn some health names NOT_SERVING (the CA cannot issue; the store failed closed).
 * A name is SERVING only while no failing condition covers it: the CA coming back must not turn SERVING a
 * server whose store refuses every call. Only the names whose status changes are passed on.
 */
export type HealthStatus = 'SERVING' | 'NOT_SERVING';

export class HealthBoard {
  /** Failing conditions and the names each one covers. */
  private readonly failing = new Map<string, readonly string[]>();

  /** `apply` sets the status of names on the server (LanyardServer.setHealth). */
  constructor(private readonly apply: (names: readonly string[], status: HealthStatus) => void) {}

  /** Records whether `condition` (covering `names`) holds, and passes on what that changes. */
  set(condition: string, names: readonly string[], ok: boolean): void {
    const before = this.notServing();
    if (ok) this.failing.delete(condition);
    else this.failing.set(condition, names);
    const after = this.notServing();
    const down = [...after].filter((n) => !before.has(n));
    const up = [...before].filter((n) => !after.has(n));
    if (down.length > 0) this.apply(down, 'NOT_SERVING');
    if (up.length > 0) this.apply(up, 'SERVING');
  }

  /** The status the board gives `name` (names no condition covers are SERVING). */
  status(name: string): HealthStatus {
    return this.notServing().has(name) ? 'NOT_SERVING' : 'SERVING';
  }

  private notServing(): Set<string> {
    const names = new Set<string>();
    for (const covered of this.failing.values()) for (const n of covered) names.add(n);
    return names;
  }
}
