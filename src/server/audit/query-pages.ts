/**
 * QueryAuditRecords' pages, bounded in bytes as well as in records. A store page of up to 1,000 records goes out
 * whole only while its lines stay under QUERY_PAGE_CHARS; otherwise it is cut before the line that would pass
 * it, and the page token resumes after the last line sent. A line longer than that on its own (an entry update
 * recording changed fields in full, up to hundreds of MiB) goes alone, a piece of EXPORT_PIECE_BYTES per page, as
 * ExportAudit sends it (export-messages.ts): no response nears gRPC's 4 MiB message limit, whatever a record
 * holds, and the client puts the line back together with the same ExportLineJoiner.
 *
 * The token of a piece names the record it continues (chain, position) and the store's token of the position
 * before it, so each piece is read again by the same indexed query (one record); a record that is no longer the
 * one there fails the call instead of splicing two records into one line.
 */
import type { AuditPage, AuditQuery, AuditStore } from '../../audit/log';
import { recordLine } from '../../audit/chain';
import { InvalidArgumentError } from '../../errors';
import type { AuditRecordLine } from '../../gen/lanyard/v1/audit';
import { decodePageToken, encodePageToken } from '../../store/page-token';
import { EXPORT_MESSAGE_CHARS, EXPORT_PIECE_BYTES } from './export-messages';

/** Code units of whole lines in one response: at most 3 MiB of UTF-8, as an export message. */
export const QUERY_PAGE_CHARS = EXPORT_MESSAGE_CHARS;

export interface QueryPageLimits {
  pageChars: number;
  pieceBytes: number;
}

const DEFAULT_LIMITS: QueryPageLimits = { pageChars: QUERY_PAGE_CHARS, pieceBytes: EXPORT_PIECE_BYTES };

export interface QueryLinesPage {
  records: AuditRecordLine[];
  nextPageToken: string;
}

/** A piece's token: the store token before the record ('' for the first), the record's chain and seq, the offset. */
const PIECE_TOKEN = ['string', 'string', 'number', 'number'] as const;

function pieceToken(before: string, chain: string, seq: number, offset: number): string {
  return encodePageToken([before, chain, seq, offset]);
}

/** The piece a token asks for, or undefined for the store's own page token. */
function pieceOf(token: string): { before: string; chain: string; seq: number; offset: number } | undefined {
  if (token === '') return undefined;
  let parts: readonly [string, string, number, number];
  try {
    parts = decodePageToken(token, PIECE_TOKEN);
  } catch {
    return undefined;
  }
  const [before, chain, seq, offset] = parts;
  if (!Number.isSafeInteger(offset) || offset <= 0) {
    throw new InvalidArgumentError('page_token is malformed: pass next_page_token unchanged');
  }
  return { before, chain, seq, offset };
}

/**
 * One response of QueryAuditRecords for `q` (its pageToken as the client sent it).
 * @throws InvalidArgumentError for a malformed token, or one whose record is no longer the one at its place
 */
export async function queryLinesPage(
  store: AuditStore,
  q: AuditQuery,
  limits: QueryPageLimits = DEFAULT_LIMITS,
): Promise<QueryLinesPage> {
  const piece = pieceOf(q.pageToken ?? '');
  if (piece !== undefined) {
    const { before, chain, seq, offset } = piece;
    const one = await store.query(at(q, before, 1));
    const r = one.records[0];
    if (r === undefined || r.chain !== chain || r.seq !== seq) {
      throw new InvalidArgumentError(
        `page_token continues record ${chain}#${seq}, which this query no longer finds there: query again`,
      );
    }
    return pieceResponse(r.chain, r.seq, Buffer.from(recordLine(r), 'utf8'), offset, before, one, limits);
  }
  const page = await store.query(q);
  const records: AuditRecordLine[] = [];
  let chars = 0;
  for (const [i, r] of page.records.entries()) {
    const json = recordLine(r);
    if (json.length > limits.pageChars || chars + json.length > limits.pageChars) {
      if (i > 0) return { records, nextPageToken: await tokenAfter(store, q, i) };
      if (json.length > limits.pageChars) {
        // Alone, in pieces; the page it came in is read again, one record at a time, as the pieces go.
        const before = q.pageToken ?? '';
        const one = page.records.length === 1 ? page : await store.query(at(q, before, 1));
        return pieceResponse(r.chain, r.seq, Buffer.from(json, 'utf8'), 0, before, one, limits);
      }
    }
    records.push({ chain: r.chain, seq: r.seq, json, jsonPiece: Buffer.alloc(0), jsonContinues: false });
    chars += json.length;
  }
  return { records, nextPageToken: page.nextPageToken };
}

/** `q` from the store's token `token` ('' for the start), `size` records. */
function at(q: AuditQuery, token: string, size: number): AuditQuery {
  const { pageToken: _given, ...rest } = q;
  return { ...rest, pageSize: size, ...(token !== '' && { pageToken: token }) };
}

/** The store's token after the first `n` records of the page `q` asks for: the page is cut there. */
async function tokenAfter(store: AuditStore, q: AuditQuery, n: number): Promise<string> {
  return (await store.query(at(q, q.pageToken ?? '', n))).nextPageToken;
}

function pieceResponse(
  chain: string,
  seq: number,
  bytes: Buffer,
  offset: number,
  before: string,
  one: AuditPage,
  limits: QueryPageLimits,
): QueryLinesPage {
  if (offset >= bytes.length) {
    throw new InvalidArgumentError(`page_token continues record ${chain}#${seq} past its end: query again`);
  }
  const end = Math.min(bytes.length, offset + limits.pieceBytes);
  const continues = end < bytes.length;
  return {
    records: [{ chain, seq, json: '', jsonPiece: bytes.subarray(offset, end), jsonContinues: continues }],
    // After the last piece: the store's token after this record ('' when it was the query's last).
    nextPageToken: continues ? pieceToken(before, chain, seq, end) : one.nextPageToken,
  };
}
