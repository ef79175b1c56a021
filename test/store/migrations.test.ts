import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Migration } from '../../src/store/migrations';
import { PG_MIGRATIONS } from '../../src/store/postgres/migrations';
import { MIGRATIONS } from '../../src/store/sqlite/migrations';

/**
 * SHA-256 of each shipped migration's description and SQL. A database that an older Lanyard made must open with
 * this one: so a shipped migration never changes, whatever the code that assembles it (src/store/schema-parts.ts
 * shares text between the two lists). A new migration adds its line here.
 */
const SHIPPED: Record<string, Record<number, string>> = {
  sqlite: {
    1: '850351522f2cac74c1c6153309e06eafb0d999df30b25cff2b0ee258b8812b4c',
    2: '898af6b3e4baca0ed04cef662c28e9aeca324f94eb0a4b0a41fc87bd45ff6e14',
    3: '30762bc83a16d5ec3461e2d7533bd3515ff15a29060125d9b1b281177e806dcd',
    4: '0c4f3d66e39124ffb1c065b1930c25b491cc3d8021bed9eb7e54f6070101fe96',
    5: 'e3131628295887f6c60f6f4baf14690a30650a3c7af5a8016e2b1493346921ab',
    6: '9a504bf2a61d728975150805796d0d0e7d4db8093b2a2eb4000be7fdc32932f5',
    7: 'cdb4ae2079b422dbf5b79f973ccdba608f1a739e15204ea2b447fac68cf0d6a2',
    8: 'a1e9510a5420f92eb77511c0f9aa7d6382076886293074180dadc08e9d448df6',
    9: 'c717a0a62e89a54226b08b9a7938e40dc0e32e27cfc04f28741f4f0913ce1b33',
    10: '08b9fe5a818cb1634d73b9e3fe3c0ec09ac722b3d8751da8e0718f6daa8b8e4c',
  },
  postgres: {
    1: '2752d663e13a63847b5ad8f0ba441a1a29b117c6bb0cd0b46e6dfca1b4b58971',
    2: '2cd881f6e6f79e6d14b8ef6ccd648de6bdde0172ba78796165511b773d8ce528',
    3: '581ae3ca66a3efa7aefba50884b76c9754b9d9dc9b5c071ab98af7793f2bf271',
    4: '08b9fe5a818cb1634d73b9e3fe3c0ec09ac722b3d8751da8e0718f6daa8b8e4c',
  },
};

function digest(m: Migration): string {
  return createHash('sha256').update(`${m.description}\n${m.sql}`).digest('hex');
}

describe('store migrations', () => {
  for (const [dialect, list] of [
    ['sqlite', MIGRATIONS],
    ['postgres', PG_MIGRATIONS],
  ] as const) {
    it(`${dialect}: every shipped migration is the text it shipped with, in order`, () => {
      assert.deepEqual(
        list.map((m) => m.version),
        list.map((_, i) => i + 1),
      );
      for (const m of list) {
        const shipped = SHIPPED[dialect]?.[m.version];
        assert.ok(shipped !== undefined, `${dialect} migration ${m.version} has no line in SHIPPED`);
        assert.equal(digest(m), shipped, `${dialect} migration ${m.version} changed after it shipped`);
      }
    });
  }

  it('notices a one-character change to a shipped migration', () => {
    const first = MIGRATIONS[0]!;
    assert.notEqual(digest({ ...first, sql: `${first.sql} ` }), SHIPPED.sqlite?.[1]);
  });
});
