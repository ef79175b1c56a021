/**
 * The audit signing key rotates (review finding 13.12): on a schedule (injected clock), each new key introduced
 * by the outgoing one, the retired private key destroyed, every public key kept with its window. A checkpoint
 * signed by a retired key while it was current still verifies; one dated outside its key's window is refused.
 * Keys at rest 0600, never in the log.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AuditPublicKey, AuditSigningKey } from '../../../src/audit/audit-key';
import { signCheckpoint } from '../../../src/audit/checkpoint';
import { AuditKeyRing } from '../../../src/audit/key-ring';
import {
  AUDIT_KEY_FILE_NAME,
  AUDIT_KEY_HISTORY_FILE_NAME,
  RotatingAuditKey,
} from '../../../src/audit/rotating-key';
import { EXIT_OK, EXIT_REJECTED } from '../../../src/cli/exit-codes';
import { startTestServer, type TestServer } from '../../support/test-server';
import { BIN, runCli, type CliResult } from '../../support/server-process';
import { tempDir } from '../../support/tmp';

const lanyard = (args: string[]): Promise<CliResult> => runCli(args, {}, path.dirname(BIN));
const T0 = new Date('2026-12-01T00:00:00.000Z');
const later = (s: number): Date => new Date(T0.getTime() + s * 1000);
const privateKeyFiles = (dir: string): string[] =>
  fs.readdirSync(dir).filter((f) => fs.readFileSync(path.join(dir, f), 'utf8').includes('PRIVATE KEY'));

describe('audit key rotation: the key store', () => {
  const root = tempDir('audit');
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const freshDir = (): string => path.join(root, `keys-${n++}`);

  it('rotates: new key introduced by the old, old private key gone, every window kept, files 0600', () => {
    const dir = freshDir();
    const keys = RotatingAuditKey.open(dir, T0);
    const first = keys.signing.publicKey.keyId;
    const intro = keys.rotate(later(3600));
    assert.notEqual(keys.signing.publicKey.keyId, first);
    assert.equal(intro.signedBy, first, 'the outgoing key introduces its successor');
    assert.deepEqual(privateKeyFiles(dir), [AUDIT_KEY_FILE_NAME], 'only the current private key is on disk');
    for (const f of fs.readdirSync(dir)) assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(
      keys.ring().entries.map((e) => [e.key.keyId, e.validFrom?.toISOString(), e.validUntil?.toISOString()]),
      [
        [first, T0.toISOString(), later(3600).toISOString()],
        [intro.keyId, later(3600).toISOString(), undefined],
      ],
    );
    const again = RotatingAuditKey.open(dir, later(7200));
    assert.equal(again.signing.publicKey.keyId, intro.keyId);
    assert.equal(again.ring().entries.length, 2);
  });

  it('a rotation never starts before what the outgoing key signed, even if the clock went back', () => {
    const keys = RotatingAuditKey.open(freshDir(), T0);
    const intro = keys.rotate(later(10), later(20));
    assert.equal(intro.validFrom, later(20).toISOString());
    assert.equal(keys.rotate(later(5)).validFrom, new Date(later(20).getTime() + 1).toISOString());
  });

  it('a crash during rotation: before the history names the next key it is discarded, after it is finished', () => {
    const dir = freshDir();
    const keys = RotatingAuditKey.open(dir, T0);
    const current = keys.signing.publicKey.keyId;
    // Crashed before the commit: a stray next key.
    AuditSigningKey.loadOrCreate(path.join(dir, 'audit-key.next.pem'));
    assert.equal(RotatingAuditKey.open(dir, T0).signing.publicKey.keyId, current);
    assert.equal(fs.existsSync(path.join(dir, 'audit-key.next.pem')), false);
    // Crashed after the commit, before the rename: the old key file still in place, the next beside it.
    const oldPem = fs.readFileSync(path.join(dir, AUDIT_KEY_FILE_NAME), 'utf8');
    const intro = RotatingAuditKey.open(dir, T0).rotate(later(60));
    fs.renameSync(path.join(dir, AUDIT_KEY_FILE_NAME), path.join(dir, 'audit-key.next.pem'));
    fs.writeFileSync(path.join(dir, AUDIT_KEY_FILE_NAME), oldPem, { mode: 0o600 });
    assert.equal(RotatingAuditKey.open(dir, later(61)).signing.publicKey.keyId, intro.keyId);
    assert.deepEqual(privateKeyFiles(dir), [AUDIT_KEY_FILE_NAME]);
  });

  it('a tampered history, or a key file that is not the current key, stops the open', () => {
    const dir = freshDir();
    RotatingAuditKey.open(dir, T0).rotate(later(60));
    const file = path.join(dir, AUDIT_KEY_HISTORY_FILE_NAME);
    const good = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, good.replace(later(60).toISOString(), later(30).toISOString()));
    assert.throws(() => RotatingAuditKey.open(dir, later(90)), /ERR_AUDIT_CHAIN_BROKEN|does not verify/);
    fs.writeFileSync(file, good);
    fs.rmSync(path.join(dir, AUDIT_KEY_FILE_NAME));
    AuditSigningKey.loadOrCreate(path.join(dir, AUDIT_KEY_FILE_NAME));
    assert.throws(() => RotatingAuditKey.open(dir, later(90)), /history's current key/);
  });

  it('a data dir from before rotation: its one key is adopted as signing since the beginning', () => {
    const dir = freshDir();
    const legacy = AuditSigningKey.loadOrCreate(path.join(dir, AUDIT_KEY_FILE_NAME));
    const keys = RotatingAuditKey.open(dir, T0);
    assert.equal(keys.signing.publicKey.keyId, legacy.publicKey.keyId);
    assert.equal(keys.ring().entries[0]?.validFrom?.getTime(), 0);
  });
});

describe('audit key rotation on a running server', function () {
  this.timeout(120_000);
  let s: TestServer;
  let offsetMs = 0;
  const files = tempDir('audit');

  before(async () => {
    s = await startTestServer({
      config: { auditKeyRotationSeconds: 3600 },
      start: { clock: () => new Date(Date.now() + offsetMs) },
    });
  });
  after(async () => {
    await s.stop();
    fs.rmSync(s.dir, { recursive: true, force: true });
    fs.rmSync(files, { recursive: true, force: true });
  });

  const createEntry = (name: string): Promise<unknown> =>
    s.client.createEntry({
      entry: {
        spiffeId: `spiffe://lanyard.local/agents/${name}`,
        selectors: [{ type: 'unix', value: `name:${name}` }],
      },
    });

  it('rotates when due; old checkpoints verify with the retired key, from the server and from the bundle', async () => {
    const socket = ['--socket', s.config.adminSocketPath];
    await createEntry('before');
    await s.running.audit.checkpoint();
    const retired = s.running.audit.key;
    assert.equal(await s.running.audit.rotateKeyIfDue(), undefined, 'not due yet');

    offsetMs = 2 * 3600_000;
    const intro = await s.running.audit.rotateKeyIfDue();
    assert.ok(intro !== undefined, 'due after the interval');
    assert.notEqual(s.running.audit.key.publicKey.keyId, retired.publicKey.keyId);
    await createEntry('after');

    const v = await lanyard(['audit', 'verify', '--server', ...socket]);
    assert.equal(v.code, EXIT_OK, v.stdout + v.stderr);
    const keysInBundle = AuditKeyRing.fromSpiffeBundle(
      JSON.parse((await s.client.getBundle()).bundle!.spiffeBundleJson),
    );
    assert.deepEqual(
      keysInBundle?.entries.map((e) => e.key.keyId),
      [retired.publicKey.keyId, intro.keyId],
      'the bundle publishes the retired key too',
    );
    assert.equal(
      AuditPublicKey.fromSpiffeBundle(JSON.parse((await s.client.getBundle()).bundle!.spiffeBundleJson))
        ?.keyId,
      intro.keyId,
      'the one key a single-key reader takes is the current one',
    );
    const checkpoints = await s.running.store.audit.checkpoints(s.running.audit.chain);
    assert.ok(checkpoints.some((c) => c.keyId === retired.publicKey.keyId));
    assert.ok(checkpoints.some((c) => c.keyId === intro.keyId));

    // Offline, with the keys and windows from the bundle.
    const bundle = path.join(files, 'bundle.json');
    fs.writeFileSync(bundle, (await s.client.getBundle()).bundle!.spiffeBundleJson);
    const out = path.join(files, 'export.jsonl');
    assert.equal((await lanyard(['audit', 'export', '--out', out, ...socket])).code, EXIT_OK);
    const offline = await lanyard(['audit', 'verify', '--file', out, '--bundle', bundle]);
    assert.equal(offline.code, EXIT_OK, offline.stdout + offline.stderr);

    const records = await s.running.store.audit.readRecords(s.running.audit.chain, 0, 10_000);
    assert.ok(
      records.records.some(
        (r) => r.event === 'key.rotate' && r.subject === intro.keyId && r.action === 'audit',
      ),
      'the rotation is in the trail',
    );
    for (const line of s.logs) assert.doesNotMatch(line, /PRIVATE KEY|"d":"/, 'no private key in the log');

    // A stolen retired key vouching for the current head is refused: it was not the key then.
    await createEntry('forged');
    const head = await s.running.store.audit.head(s.running.audit.chain);
    await s.running.store.audit.addCheckpoint(signCheckpoint(head, retired, new Date(Date.now() + offsetMs)));
    const refused = await lanyard(['audit', 'verify', '--server', ...socket]);
    assert.equal(refused.code, EXIT_REJECTED, refused.stdout);
    assert.match(
      refused.stdout,
      new RegExp(
        `checkpoint_key: checkpoint at ${head.seq} is dated .* when audit key ${retired.publicKey.keyId} was not the signing key`,
      ),
    );
  });
});
