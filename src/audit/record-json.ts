/**
 * The canonical JSON of a record (canonical.ts's rules), written field by field in the fixed order those rules
 * give a record's known fields. Hashing, storing, exporting and verifying a chain each serialise every record:
 * over millions of records the generic canonicalJson (a key sort and a string per value, recursively) was the
 * largest share of their time. Anything that is not a plain record (an unknown field, a value of another type)
 * goes to canonicalJson, so the output is byte for byte what canonicalJson gives for every input.
 */
import { canonicalJson, type CanonicalValue } from './canonical';

/** Every field a record can hold, plus `type` of a chain line; sorted as canonical JSON sorts keys. */
const FIELDS = [
  'action',
  'actor',
  'agentId',
  'chain',
  'changes',
  'decision',
  'event',
  'hash',
  'parentCertSha256',
  'parentSessionId',
  'policyVersion',
  'prevHash',
  'principal',
  'principalIssuer',
  'reason',
  'rootSessionId',
  'scopes',
  'seq',
  'serial',
  'service',
  'sessionId',
  'subject',
  'time',
  'type',
] as const;
type Field = (typeof FIELDS)[number];

// Kept in canonical order whatever the list above says: the order is what makes the output canonical.
const SORTED: readonly Field[] = [...FIELDS].sort();
const PREFIX = new Map<Field, string>(SORTED.map((k) => [k, `${JSON.stringify(k)}:`]));

type Fields = Partial<Record<Field, unknown>>;

/** `[..strings..]`, or undefined when any element is not a string (or is a hole). */
function stringArray(v: unknown): string | undefined {
  if (!Array.isArray(v)) return undefined;
  let out = '[';
  for (let i = 0; i < v.length; i++) {
    const s: unknown = v[i];
    if (typeof s !== 'string' || !(i in v)) return undefined;
    out += i === 0 ? JSON.stringify(s) : `,${JSON.stringify(s)}`;
  }
  return `${out}]`;
}

/** `[{"after":..,"before":..,"field":..},...]`, or undefined for anything else. */
function changeArray(v: unknown): string | undefined {
  if (!Array.isArray(v)) return undefined;
  let out = '[';
  for (let i = 0; i < v.length; i++) {
    const c: unknown = v[i];
    if (typeof c !== 'object' || c === null || Array.isArray(c) || !(i in v)) return undefined;
    const o = c as Record<string, unknown>;
    const { after, before, field } = o;
    if (typeof after !== 'string' || typeof before !== 'string' || typeof field !== 'string')
      return undefined;
    if (Object.keys(o).length !== 3) return undefined;
    const item = `{"after":${JSON.stringify(after)},"before":${JSON.stringify(before)},"field":${JSON.stringify(field)}}`;
    out += i === 0 ? item : `,${item}`;
  }
  return `${out}]`;
}

function value(k: Field, v: unknown): string | undefined {
  if (typeof v === 'string') return JSON.stringify(v);
  if (k === 'seq') return typeof v === 'number' && Number.isSafeInteger(v) ? JSON.stringify(v) : undefined;
  if (k === 'scopes') return stringArray(v);
  if (k === 'changes') return changeArray(v);
  return undefined;
}

/**
 * canonicalJson of `r` without `omit` and with `type` set when given, or undefined when `r` holds what the fast
 * path does not write (then the caller uses canonicalJson).
 */
function fast(r: Fields, omit: Field | undefined, type: string | undefined): string | undefined {
  let out = '{';
  let written = 0;
  let own = 0;
  for (const k of SORTED) {
    if (k === omit) continue;
    const v = k === 'type' && type !== undefined ? type : r[k];
    if (k !== 'type' || type === undefined) {
      if (v === undefined) continue;
      own++;
    }
    const text = value(k, v);
    if (text === undefined) return undefined;
    out += written === 0 ? PREFIX.get(k)! + text : `,${PREFIX.get(k)!}${text}`;
    written++;
  }
  // A field the list does not know (or a `type` that `type` would override) changes the output: not ours.
  let defined = 0;
  for (const k of Object.keys(r)) {
    if (k !== omit && r[k as Field] !== undefined) defined++;
  }
  return defined === own ? `${out}}` : undefined;
}

/** canonicalJson of a record without its `hash`: what the hash covers and what the stores keep. */
export function canonicalRecordBody(r: object): string {
  const f = r as Fields;
  const text = fast(f, 'hash', undefined);
  if (text !== undefined) return text;
  const { hash: _ignored, ...body } = f;
  return canonicalJson(body as CanonicalValue);
}

/** canonicalJson of `{type: 'record', ...r}`: a record's line in a chain file or an export. */
export function canonicalRecordLine(r: object): string {
  const text = fast(r as Fields, undefined, 'record');
  return text ?? canonicalJson({ type: 'record', ...(r as Record<string, CanonicalValue>) });
}

const HEX64 = /^[0-9a-f]{64}$/;
const EVENT_MEMBER = ',"event":"';
const EVENT_NAME = /^[a-z_.]+$/;

/**
 * The chain line of a stored record from its stored body (canonical JSON without `hash`) and hash, without
 * parsing the body: `hash` goes right after `event` (the keys before it sort below "hash", every key after it
 * above) and `type` last. For a canonical body the result is exactly recordLine of the record. Undefined when the
 * body is not in that form (then the caller parses it): a body that already names `hash` or `type`, has no
 * `event` member with a plain name, or a hash that is not SHA-256 hex. A body altered in the database comes out
 * as it is stored, to be judged by whoever verifies the line; nothing here vouches for it.
 */
export function storedRecordLine(body: string, hash: string): string | undefined {
  if (!HEX64.test(hash) || !body.startsWith('{"') || !body.endsWith('}')) return undefined;
  if (body.includes('"hash":') || body.includes('"type":')) return undefined;
  // In JSON text a quote inside a string is escaped, so `,"event":"` can only be the member itself.
  const at = body.indexOf(EVENT_MEMBER);
  if (at < 0) return undefined;
  const end = body.indexOf('"', at + EVENT_MEMBER.length);
  if (end < 0 || !EVENT_NAME.test(body.slice(at + EVENT_MEMBER.length, end))) return undefined;
  return `${body.slice(0, end + 1)},"hash":"${hash}"${body.slice(end + 1, -1)},"type":"record"}`;
}
