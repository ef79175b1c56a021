import { ErrorCode, LanyardError } from '../errors';

/** Where the next page starts: after the entry with this (SPIFFE ID, id), in list order. */
export interface EntryCursor {
  spiffeId: string;
  id: string;
}

/** Opaque to callers; base64url so it survives URLs and shells. */
export function encodeEntryCursor(c: EntryCursor): string {
  return Buffer.from(JSON.stringify([c.spiffeId, c.id]), 'utf8').toString('base64url');
}

/** @throws LanyardError(ERR_INVALID_ARGUMENT) when the token was not made by encodeEntryCursor. */
export function decodeEntryCursor(token: string): EntryCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 2 ||
    typeof parsed[0] !== 'string' ||
    typeof parsed[1] !== 'string'
  ) {
    throw new LanyardError(
      ErrorCode.INVALID_ARGUMENT,
      'page_token is malformed: pass next_page_token unchanged',
    );
  }
  return { spiffeId: parsed[0], id: parsed[1] };
}
