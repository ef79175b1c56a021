import * as assert from 'node:assert/strict';
import { ErrorCode, isLanyardError } from '../../src/errors';
import { parseDurationSeconds } from '../../src/internal/duration';

describe('parseDurationSeconds: the one duration syntax', () => {
  it('reads a whole number with a unit s, m, h or d', () => {
    assert.equal(parseDurationSeconds('90s', 'x'), 90);
    assert.equal(parseDurationSeconds('15m', 'x'), 900);
    assert.equal(parseDurationSeconds(' 1h ', 'x'), 3600);
    assert.equal(parseDurationSeconds('7d', 'x'), 7 * 86400);
  });

  it('refuses a bare number, zero, fractions, other units and huge values with ERR_INVALID_ARGUMENT', () => {
    for (const [text, fragment] of [
      ['10', 'x: "10" has no unit: write 10s, 10m, 10h or 10d'],
      ['0', 'has no unit'],
      ['0s', 'must be a positive duration'],
      ['1.5h', 'is not a duration'],
      ['10ms', 'is not a duration'],
      ['-5s', 'is not a duration'],
      ['', 'is not a duration'],
      [`${Number.MAX_SAFE_INTEGER}d`, 'must be a positive duration'],
    ] as const) {
      assert.throws(
        () => parseDurationSeconds(text, 'x'),
        (e: unknown) =>
          isLanyardError(e) && e.code === ErrorCode.INVALID_ARGUMENT && e.message.includes(fragment),
        text,
      );
    }
  });
});
