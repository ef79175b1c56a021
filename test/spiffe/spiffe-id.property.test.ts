import assert from 'node:assert/strict';
import fc from 'fast-check';
import { InvalidSpiffeIdError, InvalidTrustDomainError } from '../../src/errors';
import { SpiffeId, TrustDomain } from '../../src/spiffe';
import { propertyRuns } from '../support/property';

const TD_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789.-_';
const PATH_ALPHABET = TD_ALPHABET + 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

const trustDomainName = fc.string({ unit: fc.constantFrom(...TD_ALPHABET), minLength: 1, maxLength: 64 });
const segment = fc
  .string({ unit: fc.constantFrom(...PATH_ALPHABET), minLength: 1, maxLength: 24 })
  .filter((s) => s !== '.' && s !== '..');
const segments = fc.array(segment, { maxLength: 8 });

/** Characters worth inserting into a valid ID to break it: delimiters, escapes, case, non-ASCII. */
const nastyChar = fc.oneof(
  fc.constantFrom(
    '/',
    '.',
    ':',
    '@',
    '%',
    '?',
    '#',
    '[',
    ']',
    ' ',
    '\\',
    '\u0000',
    'A',
    'Z',
    'é',
    '\u{1F600}',
  ),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);

function onlyTypedRejections(
  fn: () => unknown,
  ...allowed: Array<abstract new (...args: never[]) => Error>
): void {
  try {
    fn();
  } catch (e) {
    if (!allowed.some((cls) => e instanceof cls)) throw e;
  }
}

describe('SpiffeId parsing properties', () => {
  it('every generated valid ID parses and round-trips to the same string and parts', () => {
    fc.assert(
      fc.property(trustDomainName, segments, (td, segs) => {
        const path = segs.map((s) => `/${s}`).join('');
        const input = `spiffe://${td}${path}`;
        const id = SpiffeId.parse(input);
        assert.equal(id.toString(), input);
        assert.equal(id.trustDomain.name, td);
        assert.equal(id.path, path);
        assert.equal(id.isTrustDomainId(), segs.length === 0);
        assert.ok(id.equals(SpiffeId.fromSegments(td, ...segs)));
        assert.ok(id.equals(SpiffeId.fromPath(TrustDomain.parse(td), path)));
        assert.ok(SpiffeId.parse(id.toString()).equals(id));
        assert.equal(TrustDomain.parse(td).idString(), `spiffe://${td}`);
      }),
      { numRuns: propertyRuns(500) },
    );
  });

  it('arbitrary strings either parse without normalisation or throw only the typed errors', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          fc.string().map((s) => `spiffe://${s}`),
        ),
        (s) => {
          onlyTypedRejections(() => {
            // Whatever is accepted is canonical already: the string we keep is the string we were given.
            assert.equal(SpiffeId.parse(s).toString(), s);
          }, InvalidSpiffeIdError);
          onlyTypedRejections(() => TrustDomain.parse(s), InvalidTrustDomainError);
        },
      ),
      { numRuns: propertyRuns(2000) },
    );
  });

  it('a valid ID with one character inserted anywhere is refused or still exactly itself', () => {
    fc.assert(
      fc.property(trustDomainName, segments, nastyChar, fc.nat(), (td, segs, ch, at) => {
        const valid = `spiffe://${td}${segs.map((s) => `/${s}`).join('')}`;
        const pos = at % (valid.length + 1);
        const mutated = valid.slice(0, pos) + ch + valid.slice(pos);
        onlyTypedRejections(
          () => assert.equal(SpiffeId.parse(mutated).toString(), mutated),
          InvalidSpiffeIdError,
        );
      }),
      { numRuns: propertyRuns(1000) },
    );
  });

  it('any character outside [a-z0-9._-] in the trust domain is refused', () => {
    const outside = nastyChar.filter((c) => [...c].some((x) => !TD_ALPHABET.includes(x)) && !c.includes('/'));
    fc.assert(
      fc.property(trustDomainName, outside, fc.nat(), (td, ch, at) => {
        const pos = at % (td.length + 1);
        const bad = td.slice(0, pos) + ch + td.slice(pos);
        assert.throws(() => SpiffeId.parse(`spiffe://${bad}/x`), InvalidSpiffeIdError);
        assert.throws(() => TrustDomain.parse(bad), InvalidTrustDomainError);
      }),
      { numRuns: propertyRuns(500) },
    );
  });

  it('any character outside [a-zA-Z0-9._-] in a segment is refused', () => {
    const outside = nastyChar.filter((c) => [...c].some((x) => !PATH_ALPHABET.includes(x)));
    fc.assert(
      fc.property(trustDomainName, segment, outside, fc.nat(), (td, seg, ch, at) => {
        const pos = at % (seg.length + 1);
        const bad = seg.slice(0, pos) + ch + seg.slice(pos);
        assert.throws(() => SpiffeId.fromSegments(td, bad), InvalidSpiffeIdError);
      }),
      { numRuns: propertyRuns(500) },
    );
  });
});
