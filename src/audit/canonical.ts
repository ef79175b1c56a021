/**
 * The bytes a record's hash and a checkpoint's signature cover: canonical JSON.
 *
 * Rules (a subset of RFC 8785, JCS, sufficient for our values): object keys sorted by UTF-16 code units, no
 * whitespace, strings and numbers as JSON.stringify writes them (records hold only strings, safe integers and
 * arrays of strings), fields that are undefined are left out, arrays keep their order. Any implementation
 * that follows these rules reproduces the hash from an exported JSON line.
 */
import { createHash } from 'node:crypto';
import { AuditRecordInvalidError } from '../errors';

export type CanonicalValue =
  string | number | boolean | null | CanonicalValue[] | { [k: string]: CanonicalValue | undefined };

export function canonicalJson(value: CanonicalValue | undefined): string {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new AuditRecordInvalidError('canonical JSON holds safe integers only');
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (value === undefined) throw new AuditRecordInvalidError('undefined has no canonical form');
  const keys = Object.keys(value)
    .filter((k) => value[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
