/**
 * A DER writer that sizes the whole tree first and then writes it into one buffer. Nesting encodeTlv and
 * concatBytes (der-writer.ts) copies every element once per level it sits under and allocates a header array
 * per element; for the agent context, dozens of short strings up to five levels deep, that copying was most
 * of the encoding time. Leaves here are strings (written as UTF-8 straight into the output) or bytes.
 */

export interface DerNode {
  tag: number;
  /** Content length in bytes. */
  size: number;
  text?: string;
  bytes?: Uint8Array;
  children?: DerNode[];
}

export function textNode(tag: number, text: string): DerNode {
  return { tag, size: Buffer.byteLength(text, 'utf8'), text };
}

export function bytesNode(tag: number, bytes: Uint8Array): DerNode {
  return { tag, size: bytes.length, bytes };
}

export function constructedNode(tag: number, children: DerNode[]): DerNode {
  let size = 0;
  for (const c of children) size += headerLength(c.size) + c.size;
  return { tag, size, children };
}

/** Tag plus DER's minimal definite length. */
function headerLength(size: number): number {
  if (size < 0x80) return 2;
  let n = 2;
  for (let v = size; v > 0; v = Math.floor(v / 256)) n++;
  return n;
}

function writeNode(out: Uint8Array, view: Buffer, offset: number, node: DerNode): number {
  out[offset++] = node.tag;
  const size = node.size;
  if (size < 0x80) {
    out[offset++] = size;
  } else {
    const lengthBytes = headerLength(size) - 2;
    out[offset++] = 0x80 | lengthBytes;
    for (let i = lengthBytes - 1, v = size; i >= 0; i--, v = Math.floor(v / 256)) out[offset + i] = v & 0xff;
    offset += lengthBytes;
  }
  if (node.children !== undefined) {
    for (const child of node.children) offset = writeNode(out, view, offset, child);
    return offset;
  }
  if (node.text !== undefined) return offset + view.write(node.text, offset, size, 'utf8');
  if (node.bytes !== undefined) out.set(node.bytes, offset);
  return offset + size;
}

/** The DER of `node`, as a plain Uint8Array of exactly its length. */
export function writeDer(node: DerNode): Uint8Array {
  const out = new Uint8Array(headerLength(node.size) + node.size);
  writeNode(out, Buffer.from(out.buffer, out.byteOffset, out.length), 0, node);
  return out;
}
