/**
 * How much one workload may ship into the audit trail: at most `maxRecords` new records and `maxBytes` of
 * them (their JSON lines) in any sliding window of `windowSeconds`. Beyond, IngestAuditChain is refused with
 * RESOURCE_EXHAUSTED (ERR_AUDIT_QUOTA_EXCEEDED) and nothing is stored; the shipper retries later (its file
 * keeps the records). In memory: a restart starts every window afresh, which bounds growth just the same.
 */
import { AuditQuotaExceededError } from '../../errors';

export interface IngestQuotaLimits {
  maxRecords: number;
  maxBytes: number;
  windowSeconds: number;
}

export const INGEST_QUOTA_DEFAULTS: Readonly<IngestQuotaLimits> = Object.freeze({
  maxRecords: 100_000,
  maxBytes: 64 * 1024 * 1024,
  windowSeconds: 3600,
});

interface Charge {
  at: number;
  records: number;
  bytes: number;
}

export class IngestQuota {
  private readonly used = new Map<string, Charge[]>();

  constructor(private readonly limits: IngestQuotaLimits) {}

  /**
   * Takes `records` and `bytes` from `who`'s window at `now`, or refuses without taking anything.
   * @returns a function that gives the charge back (the shipment was not stored after all)
   * @throws AuditError(ERR_AUDIT_QUOTA_EXCEEDED)
   */
  charge(who: string, records: number, bytes: number, now: Date): () => void {
    const t = now.getTime();
    const since = t - this.limits.windowSeconds * 1000;
    const kept = (this.used.get(who) ?? []).filter((c) => c.at > since);
    const usedRecords = kept.reduce((n, c) => n + c.records, 0);
    const usedBytes = kept.reduce((n, c) => n + c.bytes, 0);
    if (usedRecords + records > this.limits.maxRecords || usedBytes + bytes > this.limits.maxBytes) {
      this.store(who, kept);
      throw new AuditQuotaExceededError(
        `${who} may ship ${this.limits.maxRecords} records and ${this.limits.maxBytes} bytes per ${this.limits.windowSeconds} s; ` +
          `${usedRecords} records and ${usedBytes} bytes are used, this shipment adds ${records} and ${bytes}: retry later or ship more often`,
      );
    }
    const charge: Charge = { at: t, records, bytes };
    kept.push(charge);
    this.store(who, kept);
    return () => {
      const list = this.used.get(who);
      if (list === undefined) return;
      this.store(
        who,
        list.filter((c) => c !== charge),
      );
    };
  }

  private store(who: string, charges: Charge[]): void {
    if (charges.length === 0) this.used.delete(who);
    else this.used.set(who, charges);
  }
}
