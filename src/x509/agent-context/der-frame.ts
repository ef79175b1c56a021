/**
 * Reads the outermost TLV of an encoded AgentContext before its body is read, for two reasons: trailing data
 * after the element must be refused (the asn1-schema reference parser would ignore it), and the version has to
 * be read before the body is interpreted, so that a future version with a different body is reported as
 * ERR_UNSUPPORTED_AGENT_CONTEXT_VERSION rather than as malformed.
 */
import { ErrorCode } from '../../errors';
import { fail, malformed } from './field-rules';
import { AGENT_CONTEXT_VERSION, AGENT_CONTEXT_VERSION_CROSS_DOMAIN } from './types';

const TAG_SEQUENCE = 0x30;
const TAG_INTEGER = 0x02;

interface Header {
  /** Offset of the first content byte. */
  contentStart: number;
  contentLength: number;
}

/** A DER definite length starting at `offset` (the byte after the tag). */
function readLength(der: Uint8Array, offset: number, field: string): Header {
  const first = der[offset];
  if (first === undefined) malformed(field, 'truncated: length missing');
  if (first < 0x80) return { contentStart: offset + 1, contentLength: first };
  if (first === 0x80) malformed(field, 'indefinite length is BER, not DER');
  const count = first & 0x7f;
  // 32 KiB inputs never need more than two length bytes; four is a generous cap against nonsense.
  if (count > 4) malformed(field, `length of ${count} bytes is not supported`);
  if (offset + 1 + count > der.length) malformed(field, 'truncated: length incomplete');
  let length = 0;
  for (let i = 0; i < count; i++) length = length * 256 + (der[offset + 1 + i] ?? 0);
  // DER: the shortest form, so no long form below 128 and no leading zero byte.
  if (length < 0x80 || der[offset + 1] === 0) malformed(field, 'length not minimally encoded (BER, not DER)');
  return { contentStart: offset + 1 + count, contentLength: length };
}

/**
 * Checks that `der` is exactly one SEQUENCE whose first element is the INTEGER version 1 or 2.
 * Throws AgentContextError otherwise: ERR_UNSUPPORTED_AGENT_CONTEXT_VERSION for a well-formed other version.
 */
export function checkOuterFrame(der: Uint8Array): void {
  if (der.length === 0) malformed('input', 'empty');
  if (der[0] !== TAG_SEQUENCE) malformed('input', 'not an ASN.1 SEQUENCE');
  const outer = readLength(der, 1, 'input');
  const end = outer.contentStart + outer.contentLength;
  if (end > der.length) malformed('input', `truncated: declares ${end} bytes, has ${der.length}`);
  if (end < der.length) malformed('input', `${der.length - end} trailing byte(s) after the AgentContext`);

  const tagAt = outer.contentStart;
  if (tagAt >= end) malformed('version', 'missing');
  if (der[tagAt] !== TAG_INTEGER) malformed('version', 'expected an INTEGER');
  const v = readLength(der, tagAt + 1, 'version');
  if (v.contentLength === 0) malformed('version', 'empty INTEGER');
  if (v.contentStart + v.contentLength > end) malformed('version', 'truncated');
  const b0 = der[v.contentStart] ?? 0;
  const b1 = der[v.contentStart + 1] ?? 0;
  if (v.contentLength > 1 && ((b0 === 0x00 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80))) {
    malformed('version', 'INTEGER not minimally encoded (BER, not DER)');
  }
  if (v.contentLength !== 1 || (b0 !== AGENT_CONTEXT_VERSION && b0 !== AGENT_CONTEXT_VERSION_CROSS_DOMAIN)) {
    const shown =
      v.contentLength <= 6 ? String(readSigned(der, v.contentStart, v.contentLength)) : 'a large value';
    fail(
      ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
      'version',
      `${shown} is not supported (only ${AGENT_CONTEXT_VERSION} or ${AGENT_CONTEXT_VERSION_CROSS_DOMAIN})`,
    );
  }
}

function readSigned(der: Uint8Array, start: number, length: number): number {
  let value = 0;
  for (let i = 0; i < length; i++) value = value * 256 + (der[start + i] ?? 0);
  const negative = ((der[start] ?? 0) & 0x80) !== 0;
  return negative ? value - 2 ** (8 * length) : value;
}
