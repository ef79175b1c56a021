import { MalformedPemError } from '../errors';

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

export interface PemBlock {
  label: string;
  der: Uint8Array;
}

/** Every PEM block in `text`, in order. Text outside blocks (comments, openssl's "Bag Attributes") is ignored. */
export function decodePem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    const body = (m[2] ?? '').replace(/\s+/g, '');
    if (body === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) {
      throw new MalformedPemError(`PEM block ${m[1]} has an invalid base64 body`);
    }
    blocks.push({ label: m[1] ?? '', der: new Uint8Array(Buffer.from(body, 'base64')) });
  }
  return blocks;
}

/**
 * decodePem for files where a lost block matters (certificate chains, bundles): a BEGIN line without its END
 * line, as a file cut short while being written leaves it, is refused instead of silently dropping the block.
 * @throws MalformedInputError (ERR_MALFORMED_PEM).
 */
export function decodeCompletePem(text: string): PemBlock[] {
  const blocks = decodePem(text);
  const begins = text.match(/-----BEGIN [^\r\n]*?-----/g)?.length ?? 0;
  if (begins !== blocks.length) {
    throw new MalformedPemError('a PEM block is malformed or not terminated by its END line');
  }
  return blocks;
}

/** DER of every block labelled `label`; throws when there is none. */
export function decodePemBlocks(text: string, label: string): Uint8Array[] {
  const ders = decodePem(text)
    .filter((b) => b.label === label)
    .map((b) => b.der);
  if (ders.length === 0) {
    throw new MalformedPemError(`no "${label}" PEM block found`);
  }
  return ders;
}

export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
