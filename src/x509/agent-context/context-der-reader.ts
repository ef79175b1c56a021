/**
 * Reads the agent-context ASN.1 module (schema.ts) from DER in one pass with the shared strict reader, instead
 * of parsing asn1-schema object graphs and re-encoding them to prove the input was DER. Every element is
 * checked as it is read: exact tags (so no constructed strings, no other string types, no SET for a
 * SEQUENCE), minimal definite lengths (der.ts), minimal INTEGERs, GeneralizedTime only as YYYYMMDDHHMMSSZ
 * naming a real instant, well-formed UTF-8, no missing, extra or trailing elements. What comes out is
 * therefore the one value whose DER is the input; field rules and limits are still the caller's to check
 * (validate.ts), as for values from JSON.
 */
import { ErrorCode } from '../../errors';
import {
  readIntegerBytes,
  readTlv,
  TAG_GENERALIZED_TIME,
  TAG_INTEGER,
  TAG_OCTET_STRING,
  TAG_SEQUENCE,
  type Tlv,
} from '../der';
import { fail, malformed } from './field-rules';
import {
  AGENT_CONTEXT_VERSION,
  AGENT_CONTEXT_VERSION_CROSS_DOMAIN,
  DELEGATION_BINDING_VERSION,
} from './types';

/** DelegationLink.parentChain: [0] IMPLICIT SEQUENCE OF OCTET STRING. */
const TAG_PARENT_CHAIN = 0xa0;

const TAG_UTF8_STRING = 0x0c;
const Z = 0x5a;

// Fatal: invalid or overlong UTF-8 and encoded surrogates are refused, never replaced. ignoreBOM: a leading
// U+FEFF is text like any other and must survive, or the decoded value would encode to different bytes.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const TYPE_NAMES: Record<number, string> = {
  [TAG_INTEGER]: 'an INTEGER',
  [TAG_OCTET_STRING]: 'an OCTET STRING',
  [TAG_UTF8_STRING]: 'a UTF8String',
  [TAG_GENERALIZED_TIME]: 'a GeneralizedTime',
  [TAG_SEQUENCE]: 'a SEQUENCE',
};

/** The elements of one constructed element, read in order. A leaf's field name is built only when it fails. */
class ElementReader {
  private offset: number;

  constructor(
    readonly buf: Uint8Array,
    start: number,
    private readonly end: number,
    private readonly path: string,
    /** The same bytes as a Buffer, for its string decoding. */
    readonly text: Buffer = Buffer.from(buf.buffer, buf.byteOffset, buf.length),
  ) {
    this.offset = start;
  }

  /** A member's name, or an item's index in a SEQUENCE OF. */
  field(name: string | number): string {
    if (typeof name === 'number') return `${this.path}[${name}]`;
    return this.path === '' ? name : `${this.path}.${name}`;
  }

  /** The tag of the next element, or undefined at the end. */
  peekTag(): number | undefined {
    return this.offset < this.end ? this.buf[this.offset] : undefined;
  }

  next(tag: number, name: string | number): Tlv {
    if (this.offset >= this.end) malformed(this.field(name), 'missing');
    // Framing errors (DerFramingError) are turned into typed rejections by the caller.
    const tlv = readTlv(this.buf, this.offset, this.end);
    if (tlv.tag !== tag) {
      malformed(this.field(name), `expected ${TYPE_NAMES[tag]}, found tag 0x${tlv.tag.toString(16)}`);
    }
    this.offset = tlv.end;
    return tlv;
  }

  sequence(name: string | number): ElementReader {
    const tlv = this.next(TAG_SEQUENCE, name);
    return new ElementReader(this.buf, tlv.contentStart, tlv.end, this.field(name), this.text);
  }

  utf8(name: string | number): string {
    const tlv = this.next(TAG_UTF8_STRING, name);
    const buf = this.buf;
    let ascii = true;
    for (let i = tlv.contentStart; i < tlv.end; i++) {
      if (buf[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    // Nearly every field is ASCII, which is valid UTF-8 as it stands; TextDecoder costs more to call.
    if (ascii) return this.text.toString('latin1', tlv.contentStart, tlv.end);
    try {
      return utf8.decode(buf.subarray(tlv.contentStart, tlv.end));
    } catch {
      return malformed(this.field(name), 'not well-formed UTF-8');
    }
  }

  /** A copy, so a decoded context never aliases (or keeps alive) the input buffer. */
  octets(name: string | number, tag: number = TAG_OCTET_STRING): Uint8Array {
    const tlv = this.next(tag, name);
    const copy = new Uint8Array(tlv.end - tlv.contentStart);
    copy.set(this.buf.subarray(tlv.contentStart, tlv.end));
    return copy;
  }

  time(name: string): Date {
    const tlv = this.next(TAG_GENERALIZED_TIME, name);
    const date = generalizedTime(this.buf, tlv);
    if (date === undefined) malformed(this.field(name), 'GeneralizedTime must be a valid YYYYMMDDHHMMSSZ');
    return date;
  }

  /** A version INTEGER: must be DER, and `supported` or the whole structure is refused as unsupported. */
  version(name: string, supported: number, also?: number): number {
    const tlv = this.next(TAG_INTEGER, name);
    let bytes: Uint8Array;
    try {
      bytes = readIntegerBytes(this.buf, tlv);
    } catch {
      return malformed(this.field(name), 'not a DER INTEGER (empty or not minimally encoded)');
    }
    if (bytes.length !== 1 || (bytes[0] !== supported && bytes[0] !== also)) {
      const shown = bytes.length <= 6 ? String(signed(bytes)) : 'a large value';
      fail(
        ErrorCode.UNSUPPORTED_AGENT_CONTEXT_VERSION,
        this.field(name),
        `${shown} is not supported (only ${also === undefined ? supported : `${supported} or ${also}`})`,
      );
    }
    return bytes[0]!;
  }

  scopes(name: string): string[] {
    const seq = this.sequence(name);
    const out: string[] = [];
    while (seq.peekTag() !== undefined) out.push(seq.utf8(out.length));
    return out;
  }

  /** Every element has been read: anything left is an unknown extra element. */
  done(): void {
    if (this.offset !== this.end) {
      malformed(this.path === '' ? 'input' : this.path, `unexpected element at offset ${this.offset}`);
    }
  }
}

function signed(bytes: Uint8Array): number {
  let value = 0;
  for (const b of bytes) value = value * 256 + b;
  return (bytes[0] ?? 0) & 0x80 ? value - 2 ** (8 * bytes.length) : value;
}

function digits(buf: Uint8Array, at: number, count: number): number {
  let v = 0;
  for (let i = at; i < at + count; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return NaN;
    v = v * 10 + d;
  }
  return v;
}

/** YYYYMMDDHHMMSSZ naming a real instant (no 31 April, no leap second, no hour 24), else undefined. */
function generalizedTime(buf: Uint8Array, tlv: Tlv): Date | undefined {
  const s = tlv.contentStart;
  if (tlv.end - s !== 15 || buf[s + 14] !== Z) return undefined;
  const year = digits(buf, s, 4);
  const month = digits(buf, s + 4, 2);
  const day = digits(buf, s + 6, 2);
  const hour = digits(buf, s + 8, 2);
  const minute = digits(buf, s + 10, 2);
  const second = digits(buf, s + 12, 2);
  // NaN fails every comparison below, so a non-digit anywhere is refused too.
  if (!(month >= 1 && month <= 12 && day >= 1 && hour <= 23 && minute <= 59 && second <= 59))
    return undefined;
  // setUTCFullYear, not Date.UTC: the latter reads years 0..99 as 1900..1999.
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, 0);
  // A day past the end of its month rolls over into the next one.
  if (date.getUTCDate() !== day) return undefined;
  return date;
}

function readBinding(r: ElementReader): Record<string, unknown> {
  r.version('version', DELEGATION_BINDING_VERSION);
  const b = {
    parentCertSha256: r.octets('parentCertSha256'),
    childId: r.utf8('childId'),
    childKeySha256: r.octets('childKeySha256'),
    scopes: r.scopes('scopes'),
    notAfter: r.time('notAfter'),
    redeemBy: r.time('redeemBy'),
    nonce: r.octets('nonce'),
    rootSessionId: r.utf8('rootSessionId'),
    principalId: r.utf8('principalId'),
    principalIssuer: r.utf8('principalIssuer'),
    principalProvenance: r.utf8('principalProvenance'),
    prevLinkSha256: r.octets('prevLinkSha256'),
  };
  r.done();
  return b;
}

function readLink(r: ElementReader): Record<string, unknown> {
  const link = {
    spiffeId: r.utf8('spiffeId'),
    agentId: r.utf8('agentId'),
    sessionId: r.utf8('sessionId'),
    scopes: r.scopes('scopes'),
    notAfter: r.time('notAfter'),
    certSha256: r.octets('certSha256'),
    publicKey: r.octets('publicKey'),
    binding: readBinding(r.sequence('binding')),
    signature: r.octets('signature'),
  };
  if (r.peekTag() === TAG_PARENT_CHAIN) {
    const tlv = r.next(TAG_PARENT_CHAIN, 'parentChain');
    const certs = new ElementReader(r.buf, tlv.contentStart, tlv.end, r.field('parentChain'), r.text);
    const parentChain: Uint8Array[] = [];
    while (certs.peekTag() !== undefined) parentChain.push(certs.octets(parentChain.length));
    r.done();
    return { ...link, parentChain };
  }
  r.done();
  return link;
}

/**
 * The AgentContext in `der[tlv]`, the outer SEQUENCE. Untrusted until validated: the caller must run
 * assertValidAgentContext on the result. Throws AgentContextError, or DerFramingError for a bad length.
 */
export function readAgentContext(der: Uint8Array, outer: Tlv): unknown {
  const r = new ElementReader(der, outer.contentStart, outer.end, '');
  const version = r.version('version', AGENT_CONTEXT_VERSION, AGENT_CONTEXT_VERSION_CROSS_DOMAIN);
  const agentId = r.utf8('agentId');
  const sessionId = r.utf8('sessionId');
  const rootSessionId = r.utf8('rootSessionId');
  const p = r.sequence('principal');
  const principal = { id: p.utf8('id'), issuer: p.utf8('issuer'), provenance: p.utf8('provenance') };
  p.done();
  const intent = r.utf8('intent');
  const scopes = r.scopes('scopes');
  const policyVersion = r.utf8('policyVersion');
  const t = r.sequence('provenance');
  const provenance = {
    method: t.utf8('method'),
    evidenceSha256: t.octets('evidenceSha256'),
    issuer: t.utf8('issuer'),
    issuedAt: t.time('issuedAt'),
  };
  t.done();
  const links = r.sequence('delegation');
  const delegation: unknown[] = [];
  while (links.peekTag() !== undefined) {
    delegation.push(readLink(links.sequence(delegation.length)));
  }
  r.done();
  return {
    version,
    agentId,
    sessionId,
    rootSessionId,
    principal,
    intent,
    scopes,
    policyVersion,
    provenance,
    delegation,
  };
}

/** The DelegationBinding in `der[tlv]`; `field` names it in errors. Untrusted until validated. */
export function readDelegationBinding(der: Uint8Array, tlv: Tlv, field: string): unknown {
  if (tlv.tag !== TAG_SEQUENCE) malformed(field, 'not an ASN.1 SEQUENCE');
  return readBinding(new ElementReader(der, tlv.contentStart, tlv.end, field));
}
