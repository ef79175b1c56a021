/**
 * canonicalRequestPath answers a path that is already canonical (apart from case) after one scan, and sends every
 * other path through the full rules. The two must agree: a path with an escape always takes the full rules, so a
 * path and the same path with one unreserved letter escaped are compared, for the case-folding and the
 * case-sensitive routers alike.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isLanyardError } from '../../src/errors';
import { canonicalRequestPath } from '../../src/hop/http-action';
import { propertyRuns } from '../support/property';

/** The path's canonical form, or the code it is refused with. */
function outcome(target: string, caseSensitive: boolean): string {
  try {
    return `ok ${canonicalRequestPath(target, { caseSensitive })}`;
  } catch (e) {
    if (!isLanyardError(e)) throw e;
    return `refused ${e.code}`;
  }
}

// Pieces a router or an attacker would put in a path segment: plain and upper-case letters, characters outside
// the plain set, escapes (good, broken, of a slash), a fragment, a query.
const piece = fc.constantFrom(
  'x',
  'X',
  'docs',
  'Admin',
  '42',
  '-',
  '_',
  '~',
  ':',
  '@',
  '.',
  '%41',
  '%2f',
  '%2F',
  '%zz',
  '%',
  '#frag',
  '\\',
  ' ',
  '\t',
  'é',
  '?q=1',
  '?a/../b',
);
// Segments, with the ones the rules refuse or rewrite (empty, `.`, `..`) as likely as any made of pieces.
const segment = fc.oneof(
  fc.constantFrom('', '.', '..', '...'),
  fc.array(piece, { minLength: 1, maxLength: 3 }).map((p) => p.join('')),
);

describe('hop: canonicalRequestPath', () => {
  it('the one-scan answer for a plain path is what the full rules give (property)', () => {
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 6 }), fc.boolean(), (segments, caseSensitive) => {
        const target = ['/x', ...segments].join('/');
        // The same target with its first letter escaped: never plain, so always the full rules.
        const escaped = `/%78${target.slice(2)}`;
        assert.equal(outcome(target, caseSensitive), outcome(escaped, caseSensitive), target);
      }),
      { numRuns: propertyRuns(5000) },
    );
  });

  it('plain paths come back as they are, lower-cased unless the router is case-sensitive', () => {
    assert.equal(canonicalRequestPath('/'), '/');
    assert.equal(canonicalRequestPath('/docs/42?x=1'), '/docs/42');
    assert.equal(canonicalRequestPath('/Docs/A-b_c~d.e'), '/docs/a-b_c~d.e');
    assert.equal(canonicalRequestPath('/Docs/A', { caseSensitive: true }), '/Docs/A');
    assert.equal(canonicalRequestPath('/.../x'), '/.../x');
    // Not plain: the full rules rewrite or refuse them.
    assert.equal(canonicalRequestPath('/docs/'), '/docs');
    assert.throws(() => canonicalRequestPath('/a/./b'));
    assert.throws(() => canonicalRequestPath('/a//b'));
  });
});
