import { contentOf, expectTag, readChildren, readOid, readSingleTlv, TAG_SEQUENCE, TAG_SET } from './der';

/**
 * Distinguished names as RFC 5280 §7.1 compares them, for directoryName name constraints (§4.2.1.10: a name is
 * within a subtree when the subtree's base is a prefix of it, RDN by RDN).
 *
 * Attribute values of the directory string types are compared as text after an approximation of the RFC 4518
 * string preparation: Unicode NFKC, case folded, leading and trailing spaces removed and inner runs of white
 * space collapsed to one, whatever the ASN.1 string type (RFC 5280 lets a validator treat different types as
 * different strings; treating them alike means a CA cannot escape an excluded subtree by re-encoding a name).
 * Values of any other type (BIT STRING, SEQUENCE) compare by their exact DER. Multi-valued RDNs compare as sets.
 * The input must be a Name the certificate parser has already checked (certificate-der.ts checkName).
 */

/** One RDN: the comparison keys of its attributes, sorted. */
export type Rdn = readonly string[];

export function parseDn(name: Uint8Array): Rdn[] {
  const rdns: Rdn[] = [];
  for (const rdn of readChildren(name, expectTag(readSingleTlv(name), TAG_SEQUENCE, 'Name'))) {
    const keys: string[] = [];
    for (const atv of readChildren(name, expectTag(rdn, TAG_SET, 'RDN'))) {
      const [type, value] = readChildren(name, expectTag(atv, TAG_SEQUENCE, 'attribute'));
      if (type === undefined || value === undefined) continue;
      const text = stringValue(value.tag, contentOf(name, value));
      const oid = readOid(name, type);
      keys.push(
        text !== undefined
          ? `${oid}=s:${prepare(text)}`
          : `${oid}=x:${Buffer.from(name.subarray(value.start, value.end)).toString('hex')}`,
      );
    }
    rdns.push(keys.sort());
  }
  return rdns;
}

/** True when `base` is a prefix of `name` (an empty base contains every name). */
export function dnWithin(name: readonly Rdn[], base: readonly Rdn[]): boolean {
  if (base.length > name.length) return false;
  return base.every((rdn, i) => rdnEqual(rdn, name[i]!));
}

function rdnEqual(a: Rdn, b: Rdn): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

const SHORT_NAMES: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.5': 'serialNumber',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'emailAddress',
};

/** A readable form for messages only ("CN=foo, O=bar", in encoded order); not an RFC 4514 string. */
export function formatDn(name: Uint8Array): string {
  const parts: string[] = [];
  for (const rdn of readChildren(name, expectTag(readSingleTlv(name), TAG_SEQUENCE, 'Name'))) {
    const avas: string[] = [];
    for (const atv of readChildren(name, expectTag(rdn, TAG_SET, 'RDN'))) {
      const [type, value] = readChildren(name, expectTag(atv, TAG_SEQUENCE, 'attribute'));
      if (type === undefined || value === undefined) continue;
      const oid = readOid(name, type);
      const text = stringValue(value.tag, contentOf(name, value));
      avas.push(
        `${SHORT_NAMES[oid] ?? oid}=${text ?? `#${Buffer.from(name.subarray(value.start, value.end)).toString('hex')}`}`,
      );
    }
    parts.push(avas.join('+'));
  }
  return parts.join(', ');
}

/** Whether the Name's DER is the empty SEQUENCE (no RDN at all). */
export function isEmptyDn(name: Uint8Array): boolean {
  return name.length === 2 && name[0] === TAG_SEQUENCE && name[1] === 0;
}

/** RFC 4518 §2 approximated: map (NFKC, case fold), then insignificant space handling. */
function prepare(text: string): string {
  return text.normalize('NFKC').toLowerCase().normalize('NFKC').trim().replace(/\s+/g, ' ');
}

/** The text of a value of a string type; undefined for other types. */
export function stringValue(tag: number, bytes: Uint8Array): string | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (tag) {
    case 0x0c: // UTF8String
      return buf.toString('utf8');
    case 0x12: // NumericString
    case 0x13: // PrintableString
    case 0x14: // TeletexString
    case 0x16: // IA5String
      return buf.toString('latin1');
    case 0x1e: {
      // BMPString: UTF-16BE (the certificate parser has ruled out surrogates).
      const le = Buffer.from(buf);
      le.swap16();
      return le.toString('utf16le');
    }
    case 0x1c: {
      // UniversalString: UCS-4BE.
      let text = '';
      for (let i = 0; i < buf.length; i += 4) text += String.fromCodePoint(buf.readUInt32BE(i));
      return text;
    }
    default:
      return undefined;
  }
}
