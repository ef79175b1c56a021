import { Client, type ClientConfig } from 'pg';
import type { StoreChanges } from '../store';
import { BUNDLE_CHANNEL } from './ca-state';
import { REVOCATIONS_CHANNEL } from './sessions';

const RECONNECT_MS = 1000;

/**
 * LISTENs, on one connection of its own, for the notifications other servers' writes send at commit
 * (pg_notify in setBundle and addRevocation), and hands them to the listeners. PostgreSQL delivers a
 * notification to every listening session once the sending transaction commits, and never for a rollback. The
 * connection is made on the first subscription; when it breaks it is made again. Each time it is listening (the
 * first time too) the listeners are told ('' / []) that something may have been missed before, so they re-read
 * the store.
 */
export class PgChangeListener implements StoreChanges {
  private readonly bundleListeners = new Set<(trustDomain: string) => void>();
  private readonly revokedListeners = new Set<(sequences: number[]) => void>();
  private client: Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private connectedBefore = false;

  constructor(
    private readonly config: ClientConfig,
    private readonly serverId: string,
  ) {}

  onBundleChanged(listener: (trustDomain: string) => void): () => void {
    this.bundleListeners.add(listener);
    this.ensure();
    return () => this.bundleListeners.delete(listener);
  }

  onRevoked(listener: (sequences: number[]) => void): () => void {
    this.revokedListeners.add(listener);
    this.ensure();
    return () => this.revokedListeners.delete(listener);
  }

  /** Resolves once listening (for tests that must not race the first notification). */
  async ready(): Promise<void> {
    this.ensure();
    for (let i = 0; i < 200 && !this.connectedBefore && !this.stopped; i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private ensure(): void {
    if (this.client !== undefined || this.timer !== undefined || this.stopped) return;
    void this.connect();
  }

  private async connect(): Promise<void> {
    const client = new Client({ ...this.config, application_name: 'lanyard-listen' });
    this.client = client;
    let lost = false;
    const onLost = (): void => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = undefined;
      void client.end().catch(() => undefined);
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.ensure();
      }, RECONNECT_MS);
      this.timer.unref();
    };
    client.on('error', onLost);
    client.on('end', onLost);
    client.on('notification', (n) => this.deliver(n.channel, n.payload ?? ''));
    try {
      await client.connect();
      await client.query(`LISTEN ${BUNDLE_CHANNEL}`);
      await client.query(`LISTEN ${REVOCATIONS_CHANNEL}`);
    } catch {
      onLost();
      return;
    }
    // A notification committed before LISTEN took effect is never delivered: on the first connection too, the
    // listeners re-read what they hold. Otherwise a server that read the bundle or the revocations at start, and
    // began listening only after another server published, would keep the stale state until the next change.
    for (const l of this.bundleListeners) l('');
    for (const l of this.revokedListeners) l([]);
    this.connectedBefore = true;
  }

  private deliver(channel: string, payload: string): void {
    const tab = payload.indexOf('\t');
    if (tab < 0 || payload.slice(0, tab) === this.serverId) return;
    const value = payload.slice(tab + 1);
    if (channel === BUNDLE_CHANNEL) {
      for (const l of this.bundleListeners) l(value);
    } else if (channel === REVOCATIONS_CHANNEL) {
      const sequence = Number(value);
      if (!Number.isSafeInteger(sequence)) return;
      for (const l of this.revokedListeners) l([sequence]);
    }
  }
}
