/**
 * DerCursor (src/x509/der.ts), the reader the certificate parser walks a leaf with: over every constructed
 * element of real certificates and of byte mutations of a leaf, it yields exactly the elements readChildren
 * gives, and refuses what readChildren refuses, with the same error class.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DerCursor, DerFramingError, NO_ELEMENT, readChildren, readTlv, type Tlv } from '../../src/x509/der';
import { createPki, plannerChain, TD, type TrustDomainPki } from '../support/pki';
import { mutate, mutation } from './mutations';

/** Every element the cursor visits inside `parent`, as plain objects. */
function cursorChildren(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  const c = new DerCursor(buf).enter(parent);
  while (c.next() !== NO_ELEMENT) {
    out.push({ tag: c.tag, start: c.start, contentStart: c.contentStart, end: c.end });
  }
  assert.equal(c.current, undefined);
  return out;
}

/** readChildren and the cursor agree on `parent` and, recursively, on every constructed element inside it. */
function agreeOn(buf: Uint8Array, parent: Tlv): void {
  let expected: Tlv[] | Error;
  try {
    expected = readChildren(buf, parent);
  } catch (e) {
    expected = e as Error;
  }
  if (expected instanceof Error) {
    assert.ok(expected instanceof DerFramingError);
    assert.throws(() => cursorChildren(buf, parent), DerFramingError);
    return;
  }
  assert.deepEqual(cursorChildren(buf, parent), expected);
  for (const child of expected) if ((child.tag & 0x20) !== 0) agreeOn(buf, child);
}

describe('DerCursor', () => {
  // Built when the tests run, not when mocha loads the file: certificates made at load can expire or outlive
  // their links by the time a slow run reaches them.
  let pki: TrustDomainPki;
  let leaf: Uint8Array;
  before(() => {
    pki = createPki(TD);
    leaf = plannerChain(pki)[2]!.cert.der;
  });

  it('visits exactly the elements readChildren gives, at every level of real certificates', () => {
    for (const der of [leaf, pki.intermediate.cert.der, pki.root.cert.der]) agreeOn(der, readTlv(der, 0));
  });

  it('refuses a primitive parent, and an element that runs past its parent', () => {
    const int = Uint8Array.of(0x02, 0x01, 0x05);
    assert.throws(() => new DerCursor(int).enter(readTlv(int, 0)), DerFramingError);
    // SEQUENCE of 3 bytes holding an INTEGER that claims 2 bytes of content but has 1.
    const overrun = Uint8Array.of(0x30, 0x03, 0x02, 0x02, 0x05);
    const parent = { tag: 0x30, start: 0, contentStart: 2, end: 5 };
    assert.throws(() => cursorChildren(overrun, parent), DerFramingError);
    assert.throws(() => readChildren(overrun, parent), DerFramingError);
  });

  it('agrees with readChildren on byte mutations of a leaf', () => {
    fc.assert(
      fc.property(mutation, (m) => {
        const der = mutate(leaf, m);
        let top: Tlv;
        try {
          top = readTlv(der, 0);
        } catch {
          return;
        }
        if ((top.tag & 0x20) !== 0) agreeOn(der, top);
      }),
      { numRuns: 300 },
    );
  });
});
