import * as assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, isSensitiveKey } from '../../src/internal/logging';
import { generateJoinToken } from '../../src/internal/join-token-secret';

/** A logger writing into an array of parsed lines. */
function capture(): {
  lines: Record<string, unknown>[];
  raw: string[];
  logger: ReturnType<typeof createLogger>;
} {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  return {
    raw,
    get lines() {
      return raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    logger,
  };
}

describe('server logging', () => {
  it('writes JSON lines with a level label and ISO time', () => {
    const c = capture();
    c.logger.info({ method: 'GetEntry' }, 'hello');
    const [line] = c.lines;
    assert.equal(line?.level, 'info');
    assert.equal(line?.msg, 'hello');
    assert.equal(line?.method, 'GetEntry');
    assert.match(String(line?.time), /^\d{4}-\d\d-\d\dT/);
  });

  it('redacts secret-named fields at any depth but keeps ids and key references', () => {
    const c = capture();
    c.logger.info({
      token: 'a',
      tokenId: 'keep-1',
      entry_id: 'keep-2',
      nested: {
        privateKey: 'b',
        apiKey: 'c',
        password: 'd',
        keyRef: 'keep-3',
        evidence: 'e',
        deeper: [{ secret: 'f' }],
      },
    });
    const text = c.raw.join('');
    for (const secret of ['"a"', '"b"', '"c"', '"d"', '"e"', '"f"'])
      assert.ok(!text.includes(secret), secret);
    for (const kept of ['keep-1', 'keep-2', 'keep-3']) assert.ok(text.includes(kept), kept);
  });

  it('masks a join token wherever it appears: message, error, child bindings', () => {
    const c = capture();
    const token = generateJoinToken();
    c.logger.info(`issued ${token}`);
    c.logger.error({ err: new Error(`bad token ${token}`) }, 'failed');
    c.logger.child({ note: token, secret: 'x' }).warn('child');
    const text = c.raw.join('');
    assert.ok(!text.includes(token));
    assert.ok(!text.includes('"x"'));
    assert.ok(text.includes('lanyard_jt_[REDACTED]'));
  });

  it('classifies field names', () => {
    for (const k of [
      'token',
      'joinToken',
      'join_token',
      'secret',
      'privateKey',
      'private_key',
      'key',
      'api-key',
      'Authorization',
    ])
      assert.equal(isSensitiveKey(k), true, k);
    for (const k of ['tokenId', 'token_id', 'id', 'keyRef', 'monkey', 'spiffeId', 'method', 'csr'])
      assert.equal(isSensitiveKey(k), false, k);
  });
});
