/**
 * The bytes a record's hash and a checkpoint's signature cover: canonical JSON.
 *
 * Rules (a subset of RFC 8785, JCS, sufficient for our values): object keys sorted by UTF-16 code units, no
 * whitespace, strings and numbers as JSON.stringify writes them (records hold only strings, safe integers and
 * arrays of strings), fields that are undefined are left out, arrays keep their order. Any implementation
 * that follows these rules reproduces the hash from an exported JSON line.
 */
import * as crypto from 'node:crypto';
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

/**
 * SHA-256 of `data`, hex. Every record appended, verified or exported is hashed here: Node's one-shot `hash`
 * (Node >= 20.12) skips the Hash object, its stream machinery and two calls into C++, about 0.4 of the time
 * of createHash for a record-sized string. The bytes are the same; Node 20.11 (still allowed by `engines`)
 * takes createHash.
 */
export const sha256Hex: (data: string | Uint8Array) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'hex')
    : (data) => crypto.createHash('sha256').update(data).digest('hex');
