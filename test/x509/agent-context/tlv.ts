/**
 * A minimal TLV tree for tests: parse our own DER, change one node, and write it back, optionally in a BER
 * form DER forbids (long or indefinite lengths). It trusts its input and is not a decoder.
 */
export interface Tlv {
  /** Identifier octets as written (one byte for low tag numbers). */
  id: number[];
  children?: Tlv[];
  content?: Uint8Array;
  /** How to write the length: DER's minimal form unless a test asks for a non-minimal or indefinite one. */
  lengthForm?: 'der' | 'long' | 'indefinite';
}

export function parseTlv(der: Uint8Array): Tlv {
  const [node, end] = parseAt(der, 0);
  if (end !== der.length) throw new Error('trailing bytes');
  return node;
}

function parseAt(der: Uint8Array, start: number): [Tlv, number] {
  const id = [der[start] ?? 0];
  let offset = start + 1;
  let length = der[offset] ?? 0;
  offset += 1;
  if (length >= 0x80) {
    const count = length & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[offset + i] ?? 0);
    offset += count;
  }
  const end = offset + length;
  if ((id[0]! & 0x20) === 0) return [{ id, content: der.slice(offset, end) }, end];
  const children: Tlv[] = [];
  while (offset < end) {
    const [child, next] = parseAt(der, offset);
    children.push(child);
    offset = next;
  }
  return [{ id, children }, end];
}

function lengthBytes(length: number, form: 'der' | 'long'): number[] {
  const out: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) out.unshift(n % 256);
  if (form === 'der') return length < 0x80 ? [length] : [0x80 | out.length, ...out];
  // 'long' is always a form DER forbids: the long form for a short length, else a leading zero byte.
  if (length < 0x80) return [0x81, length];
  return [0x80 | (out.length + 1), 0x00, ...out];
}

export function writeTlv(node: Tlv): Uint8Array {
  const body = node.children
    ? Buffer.concat(node.children.map((c) => writeTlv(c)))
    : Buffer.from(node.content ?? new Uint8Array(0));
  const form = node.lengthForm ?? 'der';
  if (form === 'indefinite') {
    return Buffer.concat([Buffer.from([...node.id, 0x80]), body, Buffer.from([0, 0])]);
  }
  return new Uint8Array(Buffer.concat([Buffer.from([...node.id, ...lengthBytes(body.length, form)]), body]));
}

/** The node at a path of child indices. */
export function at(root: Tlv, ...path: number[]): Tlv {
  let node = root;
  for (const i of path) {
    const next = node.children?.[i];
    if (!next) throw new Error(`no child ${i}`);
    node = next;
  }
  return node;
}

export function primitive(tag: number, content: Uint8Array | string): Tlv {
  return { id: [tag], content: typeof content === 'string' ? Buffer.from(content, 'latin1') : content };
}

/** Field positions inside the encodings, from the ASN.1 module in schema.ts. */
export const CTX = {
  version: 0,
  agentId: 1,
  sessionId: 2,
  rootSessionId: 3,
  principal: 4,
  intent: 5,
  scopes: 6,
  policyVersion: 7,
  provenance: 8,
  delegation: 9,
} as const;
export const PROVENANCE = { method: 0, evidenceSha256: 1, issuer: 2, issuedAt: 3 } as const;
export const LINK = { spiffeId: 0, scopes: 3, notAfter: 4, publicKey: 6, binding: 7, signature: 8 } as const;
export const BINDING = {
  version: 0,
  childId: 2,
  childKeySha256: 3,
  scopes: 4,
  notAfter: 5,
  nonce: 7,
  principalProvenance: 11,
} as const;
