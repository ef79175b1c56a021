import * as assert from 'node:assert/strict';
import { Sightings } from '../../src/verify/sightings';

describe('Sightings (the admission rule of the leaf cache and the chain memo)', () => {
  it('answers for the exact hint noted, not for another in the same slot', () => {
    const s = new Sightings(4); // 8 slots
    s.note(0x1234_5671);
    assert.equal(s.has(0x1234_5671), true);
    assert.equal(s.has(0x1234_5679), false); // same slot (low bits), another hint
    assert.equal(s.has(0x1234_5672), false);
    s.forget(0x1234_5679); // not there: nothing is forgotten
    assert.equal(s.has(0x1234_5671), true);
    s.forget(0x1234_5671);
    assert.equal(s.has(0x1234_5671), false);
  });

  it('never takes an empty slot for the hint 0, and clear forgets everything', () => {
    const s = new Sightings(16);
    assert.equal(s.has(0), false);
    s.note(0);
    assert.equal(s.has(0), true);
    s.note(0xffff_fff3);
    s.clear();
    assert.equal(s.has(0), false);
    assert.equal(s.has(0xffff_fff3), false);
  });

  it('stays bounded: a hint displaced by a newer one in its slot is forgotten, the newer one is not', () => {
    const s = new Sightings(2); // 4 slots
    for (let h = 1; h <= 1000; h++) s.note(h);
    assert.equal(s.has(1000), true);
    assert.equal(s.has(996), false);
    assert.equal(s.has(4), false);
  });
});
