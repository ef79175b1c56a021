/**
 * How an export's lines travel (export-messages.ts): several to a message under the 4 MiB limit, a line longer
 * than a message in pieces of its UTF-8 bytes, put back together exactly (multi-byte characters cut anywhere),
 * and a client that refuses a line longer than its bound or cut off, holding at most that one line.
 */
import assert from 'node:assert/strict';
import { ExportAuditResponse } from '../../src/gen/lanyard/v1/audit';
import {
  EXPORT_MESSAGE_CHARS,
  ExportLineJoiner,
  ExportMessageWriter,
} from '../../src/server/audit/export-messages';
import { ErrorCode, isLanyardError } from '../../src/errors';

type Message = Pick<ExportAuditResponse, 'lines' | 'linePiece' | 'lineContinues'>;

/** Every message a writer sends for `lines`, as they would be encoded on the wire. */
async function send(lines: string[], messageChars?: number, pieceBytes?: number): Promise<Message[]> {
  const sent: Message[] = [];
  const w = new ExportMessageWriter(
    async (m) => {
      // Through the real encoding: what the client gets is what the wire carries.
      sent.push(
        ExportAuditResponse.decode(ExportAuditResponse.encode(ExportAuditResponse.fromPartial(m)).finish()),
      );
    },
    messageChars,
    pieceBytes,
  );
  for (const l of lines) {
    const p = w.add(l);
    if (p !== undefined) await p;
  }
  await w.flush();
  return sent;
}

function join(messages: Message[], max?: number): string[] {
  const j = new ExportLineJoiner(max);
  const out = messages.flatMap((m) => j.take(m));
  j.end();
  return out;
}

const refusedAs = (fn: () => unknown, message: RegExp): void =>
  assert.throws(fn, (e: unknown) => {
    assert.ok(isLanyardError(e), String(e));
    assert.equal(e.code, ErrorCode.AUDIT_RECORD_INVALID);
    assert.match(e.message, message);
    return true;
  });

describe('audit export messages', () => {
  it('puts ordinary lines several to a message, every message under 4 MiB on the wire', async () => {
    // Records of 3-byte characters: a message of 1 Mi code units is 3 MiB of UTF-8.
    const lines = Array.from({ length: 3_000 }, (_, i) => `{"seq":${i},"principal":"${'€'.repeat(1_000)}"}`);
    const messages = await send(lines);
    assert.ok(messages.length > 1 && messages.length < lines.length, `${messages.length} messages`);
    for (const m of messages) {
      assert.equal(m.linePiece.length, 0);
      assert.ok(ExportAuditResponse.encode(m).finish().length < 4 * 1024 * 1024);
      assert.ok(m.lines.reduce((n, l) => n + l.length, 0) <= EXPORT_MESSAGE_CHARS);
    }
    assert.deepEqual(join(messages), lines);
  });

  it('sends a line longer than a message alone, in pieces, and puts it back byte for byte', async () => {
    // 6 MiB and more: longer than gRPC's default 4 MiB message. Multi-byte characters straddle the cuts.
    const long = `{"changes":[{"after":"${'a€😀'.repeat(900_000)}"}]}`;
    assert.ok(Buffer.byteLength(long) > 6 * 1024 * 1024);
    const lines = ['{"type":"header"}', '{"seq":1}', long, '{"seq":3}'];
    const messages = await send(lines);
    const pieces = messages.filter((m) => m.linePiece.length > 0);
    assert.ok(pieces.length >= 7, `${pieces.length} pieces`);
    assert.deepEqual(
      pieces.map((m) => m.lineContinues),
      pieces.map((_, i) => i < pieces.length - 1),
    );
    for (const m of messages)
      assert.ok(ExportAuditResponse.encode(m).finish().length <= 3 * 1024 * 1024 + 64);
    assert.deepEqual(join(messages), lines);
    // Small bounds on both sides: the same lines, in more and smaller messages.
    const small = await send(lines, 1_000, 777);
    assert.ok(small.length > messages.length);
    assert.deepEqual(join(small), lines);
  });

  it('refuses a line longer than its bound, holding no more than the bound', async () => {
    const messages = await send(['{"seq":1}', 'x'.repeat(50_000)], 1_000, 4_096);
    const j = new ExportLineJoiner(20_000);
    refusedAs(() => {
      for (const m of messages) {
        j.take(m);
        assert.ok(j.held <= 20_000);
      }
    }, /longer than 20000 bytes/);
    assert.deepEqual(join(messages, 50_000), ['{"seq":1}', 'x'.repeat(50_000)]);
  });

  it('refuses an export cut inside a line, and a message that mixes lines into a line in pieces', async () => {
    const messages = await send(['y'.repeat(5_000), '{"seq":2}'], 1_000, 1_024);
    const cut = messages.slice(0, 2);
    refusedAs(() => join(cut), /ended inside a line/);
    const mixed = [messages[0]!, { lines: ['{"seq":9}'], linePiece: Buffer.alloc(0), lineContinues: false }];
    refusedAs(() => join(mixed), /inside an unfinished long line/);
    const both = [{ lines: ['{"seq":9}'], linePiece: Buffer.from('x'), lineContinues: true }];
    refusedAs(() => join(both), /both lines and a piece/);
  });
});
