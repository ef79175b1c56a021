import { InvalidArgumentError } from '../errors';

/**
 * Page tokens are a list's last key, JSON in base64url: opaque to callers, and safe in URLs and shells. Every
 * paginated list (entries, audit records) shares this one format and its one error.
 */
type Field = 'string' | 'number';
type FieldValues<S extends readonly Field[]> = { [K in keyof S]: S[K] extends 'number' ? number : string };

export function encodePageToken(fields: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(fields), 'utf8').toString('base64url');
}

/** @throws LanyardError(ERR_INVALID_ARGUMENT) when the token was not made by encodePageToken with this shape. */
export function decodePageToken<S extends readonly Field[]>(token: string, shape: S): FieldValues<S> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== shape.length ||
    !shape.every((type, i) => typeof (parsed as unknown[])[i] === type)
  ) {
    throw new InvalidArgumentError('page_token is malformed: pass next_page_token unchanged');
  }
  return parsed as FieldValues<S>;
}

/** Where the next page starts: after the entry with this (SPIFFE ID, id), in list order. */
export interface EntryCursor {
  spiffeId: string;
  id: string;
}

export function encodeEntryCursor(c: EntryCursor): string {
  return encodePageToken([c.spiffeId, c.id]);
}

/** @throws LanyardError(ERR_INVALID_ARGUMENT) when the token was not made by encodeEntryCursor. */
export function decodeEntryCursor(token: string): EntryCursor {
  const [spiffeId, id] = decodePageToken(token, ['string', 'string'] as const);
  return { spiffeId, id };
}
