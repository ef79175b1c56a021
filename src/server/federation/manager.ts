/**
 * The foreign bundles this server holds, one per federation relationship, and the poller that keeps them
 * fresh (SPIFFE Trust Domain and Bundle §5.1): each relationship's endpoint is fetched at start-up and then
 * again after the foreign bundle's `spiffe_refresh_hint`. A fetch that fails, is not authenticated, serves
 * another domain's bundle or an older sequence changes nothing but the relationship's last_error: the last
 * good bundle stays in force, and the next attempt comes sooner.
 */
import type { X509Bundle } from '../../bundle/x509-bundle';
import { ErrorCode, isLanyardError, NotFoundError } from '../../errors';
import { fetchBundle, type BundleEndpointTarget } from '../../federation/fetch-bundle';
import { describeFailure, readForeignBundle } from '../../federation/foreign-bundle';
import { SpiffeId, TrustDomain } from '../../spiffe';
import type { Store } from '../../store/store';
import type { FederationRelationshipRecord } from '../../store/types';
import type { Logger } from '../../internal/logging';

export const FEDERATION_POLL_DEFAULTS = {
  /** When the foreign bundle has no spiffe_refresh_hint. SPIRE uses five minutes too. */
  defaultRefreshSeconds: 300,
  /** A hint below this is raised to it: a publisher cannot make us poll it in a loop. */
  minRefreshSeconds: 1,
  /** A hint above this is lowered to it, so a rotation is never missed for days. */
  maxRefreshSeconds: 86400,
  /** After a failed fetch, the next attempt comes after at most this long. */
  failureRetrySeconds: 30,
  fetchTimeoutMs: 10_000,
} as const;

export interface FederationManagerOptions {
  store: Store;
  logger: Logger;
  clock?: () => Date;
  defaultRefreshSeconds?: number;
  minRefreshSeconds?: number;
  maxRefreshSeconds?: number;
  failureRetrySeconds?: number;
  fetchTimeoutMs?: number;
}

/** What issuance needs of federation: the bundles an entry's workloads receive beside their own. */
export interface FederatedBundleSource {
  bundlesFor(trustDomains: readonly string[] | undefined): X509Bundle[];
}

type Listener = (trustDomain: string, bundle: X509Bundle | undefined) => void;

interface Slot {
  bundle?: X509Bundle;
  timer?: NodeJS.Timeout;
  nextFetchAt?: Date;
  /** The running fetch, so a change of the relationship waits for it rather than racing it. */
  running?: Promise<void>;
}

export class FederationManager implements FederatedBundleSource {
  private readonly slots = new Map<string, Slot>();
  private readonly listeners = new Set<Listener>();
  private readonly clock: () => Date;
  private readonly log: Logger;
  private stopped = false;

  constructor(private readonly opts: FederationManagerOptions) {
    this.clock = opts.clock ?? (() => new Date());
    this.log = opts.logger.child({ component: 'federation' });
  }

  /** Loads every stored bundle and starts polling each relationship (its first fetch at once). */
  async start(): Promise<void> {
    for (const r of await this.opts.store.listFederationRelationships()) {
      await this.load(r.trustDomain);
      this.schedule(r.trustDomain, 0);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.slots.values()) clearTimeout(s.timer);
  }

  /** The bundle of a federated trust domain, as last accepted. */
  bundle(trustDomain: string): X509Bundle | undefined {
    return this.slots.get(trustDomain)?.bundle;
  }

  /** The bundles of `trustDomains` this server holds, in the order given, each once. */
  bundlesFor(trustDomains: readonly string[] | undefined): X509Bundle[] {
    const out: X509Bundle[] = [];
    for (const td of new Set(trustDomains ?? [])) {
      const b = this.bundle(td);
      if (b !== undefined) out.push(b);
    }
    return out;
  }

  nextFetchAt(trustDomain: string): Date | undefined {
    return this.slots.get(trustDomain)?.nextFetchAt;
  }

  /** Called with the trust domain and its new bundle (undefined: the relationship was deleted). */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * A relationship was created, updated or deleted: reload what is stored and fetch at once (or forget it).
   * Returns once that fetch has run, for callers that want to wait for it.
   */
  changed(trustDomain: string): Promise<void> {
    return this.chain(trustDomain, async () => {
      const present = await this.load(trustDomain);
      if (present) await this.fetchNow(trustDomain);
    });
  }

  /** Fetches now, whatever the schedule (tests, `lanyard federation refresh`). */
  refresh(trustDomain: string): Promise<void> {
    return this.chain(trustDomain, () => this.fetchNow(trustDomain));
  }

  private chain(trustDomain: string, fn: () => Promise<void>): Promise<void> {
    const slot = this.slot(trustDomain);
    const run = (slot.running ?? Promise.resolve()).then(fn, fn);
    slot.running = run.catch(() => undefined);
    return run;
  }

  private slot(td: string): Slot {
    let s = this.slots.get(td);
    if (s === undefined) {
      s = {};
      this.slots.set(td, s);
    }
    return s;
  }

  /** Loads the stored bundle of `td`; false (and forgets it) when the relationship is gone. */
  private async load(td: string): Promise<boolean> {
    try {
      await this.opts.store.getFederationRelationship(td);
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
      const slot = this.slots.get(td);
      clearTimeout(slot?.timer);
      this.slots.delete(td);
      if (slot?.bundle !== undefined) this.emit(td, undefined);
      return false;
    }
    const record = await this.opts.store.getFederatedBundle(td);
    const slot = this.slot(td);
    if (record !== undefined) {
      try {
        const bundle = readForeignBundle(TrustDomain.parse(td), record.bundleJson);
        if (
          slot.bundle === undefined ||
          slot.bundle.sequence !== bundle.sequence ||
          !sameAuthorities(slot.bundle, bundle)
        ) {
          slot.bundle = bundle;
          this.emit(td, bundle);
        }
      } catch (e) {
        this.log.error({ err: e, trustDomain: td }, 'stored federated bundle does not parse: not used');
      }
    }
    return true;
  }

  private schedule(td: string, seconds: number): void {
    if (this.stopped) return;
    const slot = this.slot(td);
    clearTimeout(slot.timer);
    slot.nextFetchAt = new Date(this.clock().getTime() + seconds * 1000);
    slot.timer = setTimeout(() => {
      void this.chain(td, () => this.fetchNow(td)).catch(() => undefined);
    }, seconds * 1000);
    slot.timer.unref();
  }

  private refreshSeconds(bundle: X509Bundle | undefined): number {
    const hint =
      bundle?.refreshHint ??
      this.opts.defaultRefreshSeconds ??
      FEDERATION_POLL_DEFAULTS.defaultRefreshSeconds;
    const min = this.opts.minRefreshSeconds ?? FEDERATION_POLL_DEFAULTS.minRefreshSeconds;
    const max = this.opts.maxRefreshSeconds ?? FEDERATION_POLL_DEFAULTS.maxRefreshSeconds;
    return Math.min(max, Math.max(min, hint));
  }

  private async fetchNow(td: string): Promise<void> {
    if (this.stopped) return;
    let relationship: FederationRelationshipRecord;
    try {
      relationship = await this.opts.store.getFederationRelationship(td);
    } catch (e) {
      if (e instanceof NotFoundError) {
        await this.load(td);
        return;
      }
      throw e;
    }
    const slot = this.slot(td);
    const now = this.clock();
    try {
      const fetched = await fetchBundle(targetOf(relationship), {
        ...(slot.bundle !== undefined ? { current: slot.bundle } : {}),
        timeoutMs: this.opts.fetchTimeoutMs ?? FEDERATION_POLL_DEFAULTS.fetchTimeoutMs,
        at: this.clock,
      });
      // The store refuses a lower sequence atomically (another server sharing the store may have stored newer).
      await this.opts.store.putFederatedBundle(
        td,
        {
          bundleJson: fetched.json,
          ...(fetched.bundle.sequence !== undefined ? { sequence: fetched.bundle.sequence } : {}),
          ...(fetched.bundle.refreshHint !== undefined
            ? { refreshHintSeconds: fetched.bundle.refreshHint }
            : {}),
          fetched: true,
        },
        now,
      );
      const changed =
        slot.bundle === undefined ||
        !sameAuthorities(slot.bundle, fetched.bundle) ||
        slot.bundle.sequence !== fetched.bundle.sequence;
      slot.bundle = fetched.bundle;
      if (changed) {
        this.log.info(
          {
            trustDomain: td,
            sequence: fetched.bundle.sequence,
            roots: fetched.bundle.x509Authorities.length,
          },
          'federated bundle updated',
        );
        this.emit(td, fetched.bundle);
      } else {
        this.log.debug({ trustDomain: td, sequence: fetched.bundle.sequence }, 'federated bundle unchanged');
      }
      this.schedule(td, this.refreshSeconds(fetched.bundle));
    } catch (e) {
      const message = describeFailure(e);
      // A regression is an attack or a publisher's mistake: louder than an endpoint that is down.
      const level = isLanyardError(e) && e.code !== ErrorCode.FEDERATION_FETCH_FAILED ? 'error' : 'warn';
      this.log[level](
        {
          trustDomain: td,
          url: relationship.bundleEndpointUrl,
          err: message,
          keptSequence: slot.bundle?.sequence,
        },
        'federated bundle fetch failed: the last good bundle stays in force',
      );
      await this.opts.store
        .recordFederatedFetchFailure(td, message, now)
        .catch((err: unknown) => this.log.error({ err, trustDomain: td }, 'fetch failure not recorded'));
      const retry = this.opts.failureRetrySeconds ?? FEDERATION_POLL_DEFAULTS.failureRetrySeconds;
      this.schedule(td, Math.min(retry, this.refreshSeconds(slot.bundle)));
    }
  }

  private emit(td: string, bundle: X509Bundle | undefined): void {
    for (const l of this.listeners) {
      try {
        l(td, bundle);
      } catch (e) {
        this.log.error({ err: e, trustDomain: td }, 'federated bundle listener threw');
      }
    }
  }
}

export function targetOf(r: FederationRelationshipRecord): BundleEndpointTarget {
  const trustDomain = TrustDomain.parse(r.trustDomain);
  const url = new URL(r.bundleEndpointUrl);
  if (r.profile === 'https_spiffe') {
    return {
      profile: 'https_spiffe',
      trustDomain,
      url,
      endpointSpiffeId: SpiffeId.parse(r.endpointSpiffeId ?? ''),
    };
  }
  return {
    profile: 'https_web',
    trustDomain,
    url,
    ...(r.webTrustRootsPem !== undefined ? { webTrustRootsPem: r.webTrustRootsPem } : {}),
  };
}

function sameAuthorities(a: X509Bundle, b: X509Bundle): boolean {
  const key = (x: X509Bundle): string =>
    [...x.x509Authorities.map((c) => c.sha256Hex)].sort().join(',') +
    '|' +
    [...x.jwtAuthorities.keys()].sort().join(',');
  return key(a) === key(b);
}
