/**
 * The witnesses themselves: a file witness (durable appends, a torn last line cut and ignored, a file others may
 * write refused), a syslog witness (RFC 5424 over UDP to a collector on loopback), and `audit.witnesses` /
 * `audit.ingest` / `audit.key_rotation_interval` in the config file, down to a server that sends its start-up
 * checkpoint to the collector.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileWitness, readWitnessFile } from '../../../src/audit/file-witness';
import { parseSyslogTarget, SyslogWitness } from '../../../src/audit/syslog-witness';
import { parseWitnessLines, type AuditWitness } from '../../../src/audit/witness';
import { ErrorCode, isLanyardError } from '../../../src/errors';
import { loadConfig } from '../../../src/server/config';
import { startTestServer } from '../../support/test-server';
import { tempDir } from '../../support/tmp';

/** A syslog collector on loopback: every datagram it receives. */
async function collector(): Promise<{
  socket: Socket;
  port: number;
  messages: string[];
  next(): Promise<string>;
}> {
  const socket = createSocket('udp4');
  const messages: string[] = [];
  const waiting: ((m: string) => void)[] = [];
  socket.on('message', (m) => {
    const text = m.toString('utf8');
    const w = waiting.shift();
    if (w !== undefined) w(text);
    else messages.push(text);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    socket,
    port: socket.address().port,
    messages,
    next: () => {
      const queued = messages.shift();
      return queued !== undefined ? Promise.resolve(queued) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

describe('audit witnesses: file and syslog', function () {
  this.timeout(60_000);
  const dir = tempDir('audit');
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a file witness appends whole lines (0600), cuts a torn tail before the next append, and readers skip it', async () => {
    const file = path.join(dir, 'w', 'witness.jsonl');
    const w = await FileWitness.open(file);
    await w.append('{"a":1}');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(file)).mode & 0o777, 0o700);
    await w.close();
    fs.appendFileSync(file, '{"torn":');
    assert.deepEqual(await readWitnessFile(file), ['{"a":1}'], 'a torn last line is not an entry');
    const again = await FileWitness.open(file);
    await again.append('{"b":2}');
    await again.close();
    assert.equal(fs.readFileSync(file, 'utf8'), '{"a":1}\n{"b":2}\n');
    await assert.rejects(again.append('{"c":3}'), /closed/);
    assert.deepEqual(await readWitnessFile(path.join(dir, 'none.jsonl')), []);
  });

  it('refuses a witness file others may write, and an entry that is not one line', async () => {
    const file = path.join(dir, 'open.jsonl');
    fs.writeFileSync(file, '');
    fs.chmodSync(file, 0o666);
    await assert.rejects(FileWitness.open(file), /writable by group or others/);
    fs.chmodSync(file, 0o600);
    const w = await FileWitness.open(file);
    await assert.rejects(w.append('{"a":1}\n{"b":2}'), /one line/);
    await w.close();
    assert.throws(() => parseWitnessLines('x', ['{"type":"record"}']), /unknown entry type/);
  });

  it('a syslog witness sends RFC 5424 messages: PRI, version, MSGID the entry type, the entry as the message', async () => {
    const c = await collector();
    try {
      const w: AuditWitness = SyslogWitness.open({ target: `udp://127.0.0.1:${c.port}`, facility: 'local3' });
      assert.equal(w.readLines, undefined, 'write-only');
      await w.append('{"chain":"x","type":"checkpoint"}');
      const m = await c.next();
      // local3 (19) * 8 + notice (5) = 157
      assert.match(
        m,
        /^<157>1 \d{4}-\d\d-\d\dT\S+Z \S+ lanyard \d+ checkpoint - \{"chain":"x","type":"checkpoint"\}$/,
      );
      await w.close();
    } finally {
      c.socket.close();
    }
    assert.throws(() => parseSyslogTarget('tcp://127.0.0.1:514'), /must be udp:\/\/host:port/);
    assert.deepEqual(parseSyslogTarget('udp://[::1]:514'), { host: '::1', port: 514 });
  });

  it('audit.witnesses, audit.ingest and audit.key_rotation_interval in the config file; bad values name the field', () => {
    const file = path.join(dir, 'lanyard.yaml');
    fs.writeFileSync(
      file,
      [
        'audit:',
        '  key_rotation_interval: 7d',
        '  witnesses:',
        '    - file: witness/elsewhere.jsonl',
        '    - syslog: udp://127.0.0.1:514',
        '  ingest:',
        '    max_records: 10',
        '    window: 10m',
        '',
      ].join('\n'),
    );
    const c = loadConfig({ configFile: file, dataDir: dir, env: {} });
    assert.equal(c.auditKeyRotationSeconds, 7 * 86400);
    assert.deepEqual(c.auditWitnesses, [
      { file: path.join(dir, 'witness', 'elsewhere.jsonl') },
      { syslog: 'udp://127.0.0.1:514', facility: 'authpriv' },
    ]);
    assert.deepEqual(c.auditIngest, {
      maxRecords: 10,
      maxBytes: 64 * 1024 * 1024,
      windowSeconds: 600,
      maxClockSkewSeconds: 300,
      maxRecordAgeSeconds: 7 * 86400,
    });
    for (const [yaml, field] of [
      ['audit:\n  witnesses:\n    - syslog: tcp://127.0.0.1:514\n', 'audit.witnesses[0]'],
      ['audit:\n  ingest:\n    max_records: 0\n', 'audit.ingest.max_records'],
      ['audit:\n  key_rotation_interval: 0\n', 'audit.key_rotation_interval'],
    ] as const) {
      fs.writeFileSync(file, yaml);
      assert.throws(
        () => loadConfig({ configFile: file, dataDir: dir, env: {} }),
        (e: unknown) => isLanyardError(e) && e.code === ErrorCode.INVALID_CONFIG && e.message.includes(field),
        yaml,
      );
    }
  });

  it('a server sends its key history and start-up checkpoint to a configured syslog witness', async () => {
    const c = await collector();
    const s = await startTestServer({
      config: { auditWitnesses: [{ syslog: `udp://127.0.0.1:${c.port}`, facility: 'authpriv' }] },
    });
    try {
      const types = [
        JSON.parse((await c.next()).replace(/^.* - /, '')).type,
        JSON.parse((await c.next()).replace(/^.* - /, '')).type,
      ];
      assert.deepEqual(types, ['audit-key', 'checkpoint']);
    } finally {
      await s.stop();
      c.socket.close();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });
});
