/**
 * What a shipped chain may say. A service ships the decisions its own hop helpers made (hop.ts): nothing
 * else is its to record. The server's account of sessions, grants, issuance and revocations comes from the
 * server's own chain only, so a record shipped by a workload must not look like one of those, must be the
 * shipper's own decision, and must be dated when it could have happened.
 *
 * Rules for each record a shipment adds:
 * - its event is one a hop records (SHIPPED_EVENT_TYPES: `hop.decision`);
 * - its deciding service (`service`) is the shipper, the chain's SPIFFE ID. (In a hop record `actor` is the
 *   peer the hop decided about, as in every record `actor` is who called; the recorder is `service`.) A hop
 *   helper names itself by its X509Source's SPIFFE ID unless given another `service` name, which then cannot
 *   be shipped;
 * - its time is not after the server's clock plus the allowed skew, not older than the maximum age, and not
 *   earlier than the record before it (less the skew: decisions are appended in the order they were made).
 */
import { AuditError, AuditRecordInvalidError } from '../errors';
import type { AuditEventType, AuditRecord } from './record';

/** The event types a shipped chain may hold: what `hopDecisionEvent` produces. */
export const SHIPPED_EVENT_TYPES: readonly AuditEventType[] = Object.freeze(['hop.decision']);

export interface ShippedRecordLimits {
  now: Date;
  /** Seconds a record may be dated ahead of the server's clock (clock skew). */
  maxClockSkewSeconds: number;
  /** Seconds a record may be older than the server's clock when it arrives. */
  maxAgeSeconds: number;
}

export const SHIPPED_RECORD_DEFAULTS = Object.freeze({
  maxClockSkewSeconds: 300,
  maxAgeSeconds: 7 * 24 * 3600,
});

/**
 * Checks the records a shipment adds to `chain` (the shipper's SPIFFE ID).
 * @param previous the record stored before the first of them, if any (its time bounds the first one's)
 * @throws AuditError(ERR_AUDIT_RECORD_INVALID) naming the first record that breaks a rule
 */
export function checkShippedRecords(
  chain: string,
  added: readonly AuditRecord[],
  previous: Pick<AuditRecord, 'time' | 'seq'> | undefined,
  limits: ShippedRecordLimits,
): void {
  const refuse = (r: AuditRecord, why: string): AuditError =>
    new AuditRecordInvalidError(`shipped record ${r.seq} of "${chain}": ${why}`);
  const now = limits.now.getTime();
  const skew = limits.maxClockSkewSeconds * 1000;
  let prevTime = previous !== undefined ? Date.parse(previous.time) : undefined;
  for (const r of added) {
    if (!SHIPPED_EVENT_TYPES.includes(r.event)) {
      throw refuse(
        r,
        `event "${r.event}" is not one a service records about its own hops (${SHIPPED_EVENT_TYPES.join(', ')}); the server's account of sessions, grants and issuance comes from its own chain only`,
      );
    }
    if (r.service !== chain) {
      throw refuse(
        r,
        r.service === undefined
          ? 'it names no deciding service; a shipped decision must be the shipper’s own'
          : `it is a decision of "${r.service.slice(0, 200)}", not of the shipper: a service ships only its own decisions (a hop helper given another service name cannot ship them)`,
      );
    }
    const t = Date.parse(r.time);
    if (t > now + skew) {
      throw refuse(
        r,
        `it is dated ${r.time}, after the server's clock (${limits.now.toISOString()}) plus ${limits.maxClockSkewSeconds} s`,
      );
    }
    if (t < now - limits.maxAgeSeconds * 1000) {
      throw refuse(r, `it is dated ${r.time}, more than ${limits.maxAgeSeconds} s ago: ship more often`);
    }
    if (prevTime !== undefined && t < prevTime - skew) {
      throw refuse(r, `it is dated ${r.time}, before the record ahead of it in the chain`);
    }
    prevTime = Math.max(prevTime ?? t, t);
  }
}
