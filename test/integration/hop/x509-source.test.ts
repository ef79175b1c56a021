/**
 * The X509Sources against a real Lanyard server: renewal at about half the lifetime, following a CA rotation
 * through WatchBundle, failures retried with back-off while the current SVID keeps serving until it expires,
 * re-attestation with fresh evidence after that, close() stopping everything; StaticX509Source from files.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ServerX509Source } from '../../../src/client/server-x509-source';
import { StaticX509Source } from '../../../src/client/static-x509-source';
import { LanyardError } from '../../../src/errors';
import { CaRotationStep } from '../../../src/gen/lanyard/v1/admin';
import { generateSigningKeyPair } from '../../../src/x509/keys';
import { encodePem } from '../../../src/x509/pem';
import type { TestServer } from '../../support/test-server';
import { eventually, id, serverBundle, startLanyard } from '../../support/hop';
import { assertRefusal } from '../../support/refusal';

describe('X509Sources', function () {
  this.timeout(60_000);
  let s: TestServer;
  before(async () => {
    s = await startLanyard();
  });
  after(() => s.stop());

  const register = async (name: string, ttl: number): Promise<string> => {
    const r = await s.client.createEntry({
      entry: {
        spiffeId: id(name),
        selectors: [{ type: 'unix', value: `name:${name}` }],
        x509SvidTtlSeconds: ttl,
      },
    });
    return r.entry!.id;
  };
  const token = async (name: string): Promise<Uint8Array> =>
    Buffer.from((await s.client.createJoinToken({ spiffeId: id(name) })).token);

  it('attests, then renews on its own at about half the lifetime and emits update', async () => {
    await register('short-lived', 4);
    const source = await ServerX509Source.start({
      server: s.running.publicAddress,
      bundle: serverBundle(s),
      attestorType: 'join_token',
      evidence: await token('short-lived'),
    });
    try {
      const first = source.getX509Svid();
      assert.equal(first.id.toString(), id('short-lived'));
      assert.equal(first.context?.agentId !== undefined, true);
      const serials = new Set<string>([first.chain[0]!.serialHex]);
      source.on('update', () => serials.add(source.getX509Svid().chain[0]!.serialHex));
      // Lifetime 4 s (plus the server's backdating): renewals come about every 2 s; allow a generous bound.
      await eventually(() => serials.size >= 3, 20_000, 'two renewals');
      const now = source.getX509Svid();
      assert.ok(
        now.notAfter.getTime() > first.notAfter.getTime(),
        `${now.notAfter.toISOString()} ${first.notAfter.toISOString()} ${now.chain[0]!.notBefore.toISOString()} ${first.chain[0]!.notBefore.toISOString()}`,
      );
      assert.equal(now.id.toString(), first.id.toString());
      // Renew keeps the agent and session of the attested SVID.
      assert.equal(now.context?.agentId, first.context?.agentId);
    } finally {
      await source.close();
    }
  });

  it('follows a CA rotation through WatchBundle (the new root arrives as an update)', async () => {
    await register('bundle-watcher', 3600);
    const source = await ServerX509Source.start({
      server: s.running.publicAddress,
      bundle: serverBundle(s),
      attestorType: 'join_token',
      evidence: await token('bundle-watcher'),
    });
    try {
      const td = source.getX509Svid().id.trustDomain;
      const before = source.getX509BundleForTrustDomain(td)!.x509Authorities.length;
      let updates = 0;
      source.on('update', () => (updates += 1));
      await s.client.rotateCa({ step: CaRotationStep.CA_ROTATION_STEP_PREPARE });
      await eventually(
        () => source.getX509BundleForTrustDomain(td)!.x509Authorities.length === before + 1,
        10_000,
        'the prepared root in the source bundle',
      );
      assert.ok(updates >= 1);
    } finally {
      await source.close();
    }
  });

  it('retries with back-off while renewal fails, keeps serving until expiry, then attests again with fresh evidence', async () => {
    const entryId = await register('flaky', 3);
    let attestations = 0;
    const source = await ServerX509Source.start({
      server: s.running.publicAddress,
      bundle: serverBundle(s),
      attestorType: 'join_token',
      // A function: called for every attestation, so a fresh single-use token each time.
      evidence: async () => {
        attestations += 1;
        return token('flaky');
      },
      retry: { initialMs: 100, maxMs: 400 },
      watchBundle: false,
      watchRevocations: false,
    });
    try {
      const first = source.getX509Svid();
      const errors: Error[] = [];
      source.on('error', (e) => errors.push(e));
      // Deleting the entry makes Renew fail (ERR_NO_MATCHING_ENTRY): the source retries.
      await s.client.deleteEntry({ id: entryId });
      await eventually(() => errors.length >= 2, 15_000, 'two failed refreshes');
      if (Date.now() < first.notAfter.getTime() - 200) {
        assert.equal(source.getX509Svid(), first, 'the current SVID keeps serving');
      }
      await eventually(() => Date.now() > first.notAfter.getTime(), 10_000, 'expiry');
      assert.throws(
        () => source.getX509Svid(),
        (e: LanyardError) => e.code === 'ERR_SOURCE_NOT_READY',
      );

      // The entry is back: the next retry attests again (the old SVID cannot be renewed once expired).
      await register('flaky', 3600);
      await eventually(
        () => {
          try {
            return source.getX509Svid().chain[0]!.serialHex !== first.chain[0]!.serialHex;
          } catch {
            return false;
          }
        },
        15_000,
        'recovery',
      );
      assert.ok(attestations >= 2);
    } finally {
      await source.close();
    }
  });

  it('close() stops renewals and streams; the getters throw afterwards', async () => {
    await register('closer', 2);
    const source = await ServerX509Source.start({
      server: s.running.publicAddress,
      bundle: serverBundle(s),
      attestorType: 'join_token',
      evidence: await token('closer'),
    });
    const renewCalls = (): number => s.logs.filter((l) => l.includes('"method":"Renew"')).length;
    const initial = renewCalls();
    await source.renewNow();
    assert.equal(renewCalls(), initial + 1, 'the server logs each Renew');
    let updates = 0;
    source.on('update', () => (updates += 1));
    await source.close();
    await source.close();
    assertRefusal(
      (() => {
        try {
          source.getX509Svid();
        } catch (e) {
          return e;
        }
        return undefined;
      })(),
      'ERR_SOURCE_NOT_READY',
    );
    assert.equal(source.getX509BundleForTrustDomain(serverBundle(s).trustDomain), undefined);
    // Past the point where a renewal would have run: no Renew reached the server, and no event fired.
    const before = renewCalls();
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(renewCalls(), before);
    assert.equal(updates, 0);
  });

  it('a refused first attestation rejects start() with the server error', async () => {
    await assert.rejects(
      ServerX509Source.start({
        server: s.running.publicAddress,
        bundle: serverBundle(s),
        attestorType: 'join_token',
        evidence: Buffer.from('not-a-token'),
      }),
      (e: Error & { code?: number }) => e.code === 16,
    );
  });

  it('StaticX509Source reads SVID, key and bundle files, rotates with reloadFiles, refuses a key of another SVID', async () => {
    await register('files', 3600);
    const live = await ServerX509Source.start({
      server: s.running.publicAddress,
      bundle: serverBundle(s),
      attestorType: 'join_token',
      evidence: await token('files'),
      watchBundle: false,
      watchRevocations: false,
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-static-'));
    try {
      const write = (): { certFile: string; keyFile: string; bundleFile: string } => {
        const svid = live.getX509Svid();
        const certFile = path.join(dir, 'svid.pem');
        const keyFile = path.join(dir, 'svid.key');
        const bundleFile = path.join(dir, 'bundle.pem');
        fs.writeFileSync(certFile, svid.chain.map((c) => encodePem('CERTIFICATE', c.der)).join(''));
        fs.writeFileSync(keyFile, svid.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
        fs.writeFileSync(bundleFile, s.running.ca.bundle().toPem());
        return { certFile, keyFile, bundleFile };
      };
      const files = write();
      const source = StaticX509Source.fromFiles(files);
      assert.equal(source.getX509Svid().id.toString(), id('files'));
      assert.ok(source.getX509BundleForTrustDomain(source.getX509Svid().id.trustDomain));
      let updated = false;
      source.on('update', () => (updated = true));
      await live.renewNow();
      source.reloadFiles(write());
      assert.ok(updated);
      assert.equal(source.getX509Svid().chain[0]!.serialHex, live.getX509Svid().chain[0]!.serialHex);

      fs.writeFileSync(
        files.keyFile,
        generateSigningKeyPair('ec-p256').privateKey.export({ type: 'pkcs8', format: 'pem' }),
      );
      assert.throws(
        () => StaticX509Source.fromFiles(files),
        (e: LanyardError) => e.code === 'ERR_UNSUPPORTED_KEY',
      );
      await source.close();
    } finally {
      await live.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
