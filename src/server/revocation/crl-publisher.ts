/**
 * Keeps the signed CRLs current: regenerated after every committed revocation (from the RevocationFeed),
 * after every CA change (a new or retired CA key), and on a timer well before nextUpdate, so a relying party
 * that refetches on nextUpdate never holds a stale list. Expired certificates drop out on the next refresh.
 */
import type { CaManager } from '../../ca';
import type { SignedCrl } from '../../ca/ca-manager';
import type { Store } from '../../store/store';
import { encodePem } from '../../x509/pem';
import type { Logger } from '../logging';
import type { RevocationFeed } from '../sessions/revocation-feed';

export const CRL_DEFAULTS = Object.freeze({
  /** nextUpdate - thisUpdate: how long a fetched CRL may be relied on. */
  validitySeconds: 3600,
  /** Regenerated at least this often even when nothing changed (a sixth of the validity). */
  refreshSeconds: 600,
});

export interface PublishedCrls {
  /** Grows with every publication, across restarts and CA rotations (a counter in the store). */
  crlNumber: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  /** How many serials each CRL lists. */
  revokedCount: number;
  /** The active CA's CRL, DER: what `/crl/<td>.crl` serves. */
  activeDer: Uint8Array;
  /** Every CA's CRL (prepared, active, old), PEM, concatenated: what `/crl/<td>.pem` serves. */
  pem: string;
  crls: readonly SignedCrl[];
}

export interface CrlPublisherOptions {
  store: Store;
  ca: CaManager;
  feed: RevocationFeed;
  clock: () => Date;
  logger: Logger;
  validitySeconds?: number;
  refreshSeconds?: number;
}

export class CrlPublisher {
  private current: PublishedCrls | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: (() => void)[] = [];
  private stopped = false;
  private readonly validityMs: number;
  private readonly refreshMs: number;

  constructor(private readonly options: CrlPublisherOptions) {
    this.validityMs = (options.validitySeconds ?? CRL_DEFAULTS.validitySeconds) * 1000;
    this.refreshMs = (options.refreshSeconds ?? CRL_DEFAULTS.refreshSeconds) * 1000;
  }

  /** Publishes the first CRLs, then follows changes. @throws when the first publication fails. */
  async start(): Promise<void> {
    await this.refresh();
    const onChange = (): void => void this.refresh().catch(() => {});
    this.unsubscribe.push(this.options.feed.subscribe(onChange), this.options.ca.onBundleChange(onChange));
    this.timer = setInterval(onChange, this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    for (const u of this.unsubscribe.splice(0)) u();
  }

  /** The latest CRLs, or undefined before the first publication. */
  published(): PublishedCrls | undefined {
    return this.current;
  }

  /**
   * Regenerates now. Calls during a refresh coalesce into one more refresh after it, so the last change
   * is always covered and at most two run back to back. A failure keeps the previous CRLs (logged).
   */
  refresh(): Promise<void> {
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          if (this.stopped) return;
          await this.publish();
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async publish(): Promise<void> {
    const { store, ca, clock, logger } = this.options;
    const thisUpdate = clock();
    try {
      const revoked = await store.listRevokedSerials(thisUpdate);
      // Taken from the store before signing: a failure below leaves a gap, which RFC 5280 allows; a
      // number used twice, or one that goes back after a restart, it does not.
      const crlNumber = await store.nextCrlNumber();
      const nextUpdate = new Date(thisUpdate.getTime() + this.validityMs);
      const crls = ca.signCrls({ crlNumber, thisUpdate, nextUpdate, revoked });
      const active = crls.find((c) => c.state === 'active');
      if (active === undefined) throw new Error('no active CA holds a key to sign the CRL');
      this.current = {
        crlNumber,
        thisUpdate,
        nextUpdate,
        revokedCount: revoked.length,
        activeDer: active.der,
        pem: crls.map((c) => encodePem('X509 CRL', c.der)).join(''),
        crls,
      };
      logger.debug(
        { crlNumber: crlNumber.toString(), revoked: revoked.length, cas: crls.length },
        'CRL published',
      );
    } catch (e) {
      logger.warn({ err: e }, 'CRL refresh failed; the previous CRL stays published');
      throw e;
    }
  }
}
