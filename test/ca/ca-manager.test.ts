import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Bundle } from '../../src/bundle';
import {
  CaManager,
  DiskKeyManager,
  MemoryKeyManager,
  rotationTimes,
  ServerSvid,
  serverTlsPem,
  SignedX509Svid,
  startRotationTimer,
  TickResult,
} from '../../src/ca';
import { CaError, ErrorCode, LanyardError } from '../../src/errors';
import { verifyX509Svid } from '../../src/verify';
import { ParsedCertificate } from '../../src/x509/certificate';
import { generateSigningKeyPair } from '../../src/x509/keys';
import {
  addSeconds,
  assertNoSecrets,
  DataDir,
  errorText,
  secretFragments,
  storeFailingMidCommit,
  SwappingKeyManager,
  TD,
} from '../support/ca';
import { removeDir, tempDir } from '../support/tmp';
import { T0 } from '../support/clock';
import { rejectsWithCodeAs } from '../support/refusal';

const CA_TTL = 600;

async function sign(ca: CaManager, at: Date, ttlSeconds = 300, path = '/agent'): Promise<SignedX509Svid> {
  return ca.signX509Svid({
    spiffeId: `spiffe://${TD}${path}`,
    publicKey: generateSigningKeyPair('ec-p256').publicKey,
    ttlSeconds,
    now: at,
  });
}

function verifies(chain: readonly Uint8Array[], bundle: X509Bundle, at: Date): void {
  verifyX509Svid(chain, bundle, { at, cache: null });
}

function activeOf(ca: CaManager): ReturnType<CaManager['authorities']>[number] {
  const a = ca.authorities().find((x) => x.state === 'active');
  assert.ok(a, 'an active CA');
  return a;
}

function rootsOf(bundle: X509Bundle): string[] {
  return bundle.x509Authorities.map((c) => c.sha256Hex);
}

describe('CaManager', () => {
  let dir: string;
  let d: DataDir;
  beforeEach(() => {
    dir = tempDir('ca-manager');
    d = new DataDir(dir);
  });
  afterEach(async () => {
    await d.stop();
    removeDir(dir);
  });

  describe('first start', () => {
    it('creates a self-signed root for the trust domain and publishes it as bundle sequence 1', async () => {
      const { ca, store } = await d.start();
      const authorities = ca.authorities();
      assert.equal(authorities.length, 1);
      const a = authorities[0]!;
      assert.equal(a.state, 'active');
      assert.equal(a.selfSigned, true);
      const root = ParsedCertificate.fromDer(a.certDer);
      assert.ok(root.isCa && root.selfIssued && root.isSignedBy(root));
      assert.deepEqual([...root.uriSans], [`spiffe://${TD}`]);
      assert.equal(root.basicConstraints?.pathLen, 0, 'a Lanyard CA signs leaves only');
      assert.equal(root.notAfter.getTime(), addSeconds(T0, CA_TTL).getTime());

      const bundle = ca.bundle();
      assert.equal(bundle.sequence, 1);
      assert.deepEqual(rootsOf(bundle), [root.sha256Hex]);
      const stored = await store.getBundle(TD);
      assert.equal(stored?.sequence, 1);
      assert.deepEqual(
        stored?.x509AuthoritiesDer.map((b) => b.toString('hex')),
        [Buffer.from(root.der).toString('hex')],
      );
      const records = await store.listCaAuthorities();
      assert.deepEqual(
        records.map((r) => [r.id, r.status]),
        [[a.id, 'active']],
      );
      assert.deepEqual(records[0]!.upstreamChainDer, []);
    });

    it('keeps the CA key as one 0600 file in a 0700 <dataDir>/keys', async () => {
      const { ca } = await d.start();
      const files = readdirSync(d.keysDir);
      assert.deepEqual(files, [`x509-ca-${activeOf(ca).id}.pem`]);
      assert.equal(statSync(d.keysDir).mode & 0o777, 0o700);
      assert.equal(statSync(join(d.keysDir, files[0]!)).mode & 0o777, 0o600);
    });

    it('signs X509-SVIDs that verify against its bundle, with the CA certificate after the leaf', async () => {
      const { ca } = await d.start();
      const svid = await sign(ca, T0, 120, '/agents/planner');
      assert.equal(svid.chain.length, 2);
      assert.deepEqual(svid.chain[1], activeOf(ca).certDer);
      assert.equal(svid.authorityId, activeOf(ca).id);
      assert.equal(svid.bundle, ca.bundle());
      assert.equal(svid.leaf.notAfter.getTime(), addSeconds(T0, 120).getTime());
      const verified = verifyX509Svid(svid.chain, ca.bundle(), { at: addSeconds(T0, 1), cache: null });
      assert.equal(verified.id.toString(), `spiffe://${TD}/agents/planner`);
    });

    it('refuses to sign for another trust domain', async () => {
      const { ca } = await d.start();
      await rejectsWithCodeAs(
        ca.signX509Svid({
          spiffeId: 'spiffe://other.org/agent',
          publicKey: generateSigningKeyPair().publicKey,
          ttlSeconds: 60,
        }),
        LanyardError,
        ErrorCode.WRONG_TRUST_DOMAIN,
      );
    });
  });

  describe('restart on the same data dir', () => {
    it('reloads the same CA (same root, same key) and the same bundle, without a new sequence', async () => {
      const first = await d.start();
      const before = first.ca.authorities();
      const keyFilesBefore = d.keyFileContents();
      const svid = await sign(first.ca, T0, 300);
      await d.stop();

      d.clock.set(addSeconds(T0, 30));
      const { ca } = await d.start();
      assert.deepEqual(
        ca.authorities().map((a) => [a.id, a.state, a.sha256Hex]),
        before.map((a) => [a.id, a.state, a.sha256Hex]),
      );
      assert.deepEqual(d.keyFileContents(), keyFilesBefore, 'the key file is reused, not rewritten');
      assert.equal(ca.bundle().sequence, 1);
      verifies(svid.chain, ca.bundle(), d.clock.now);
      // Proves the reloaded key is the CA's: the new SVID chains to the same root, in the old bundle too.
      const again = await sign(ca, d.clock.now);
      assert.deepEqual(again.chain[1], before[0]!.certDer);
      verifies(again.chain, svid.bundle, d.clock.now);
    });

    it('removes CA keys that no record names (a crash between writing a key and committing its record)', async () => {
      const { ca } = await d.start();
      const kept = `x509-ca-${activeOf(ca).id}`;
      await d.stop();
      const keys = DiskKeyManager.inDataDir(dir);
      await keys.generateKey('x509-ca-00000000-crashed', 'ec-p256');
      await keys.generateKey('not-a-ca-key', 'ec-p256');
      await d.start();
      assert.deepEqual(await keys.listKeys(), ['not-a-ca-key', kept].sort(), 'only unreferenced CA keys go');
    });

    it('drops a prepared CA whose key is gone, and retires an active one, keeping its root until it expires', async () => {
      const first = await d.start();
      const oldActive = activeOf(first.ca);
      const svid = await sign(first.ca, T0, 300);
      await first.ca.prepare();
      assert.equal(first.ca.bundle().sequence, 2);
      await d.stop();
      for (const f of readdirSync(d.keysDir)) rmSync(join(d.keysDir, f));

      d.clock.set(addSeconds(T0, 10));
      const { ca, store } = await d.start();
      const states = ca.authorities().map((a) => [a.id === oldActive.id ? 'previous' : 'new', a.state]);
      assert.deepEqual(states, [
        ['previous', 'old'],
        ['new', 'active'],
      ]);
      assert.deepEqual(
        (await store.listCaAuthorities()).map((r) => r.status),
        ['retired', 'active'],
      );
      assert.ok(rootsOf(ca.bundle()).includes(oldActive.sha256Hex), 'SVIDs of the lost CA still verify');
      assert.equal(ca.bundle().x509Authorities.length, 2, 'the dropped prepared root left the bundle');
      verifies(svid.chain, ca.bundle(), d.clock.now);
      verifies((await sign(ca, d.clock.now)).chain, ca.bundle(), d.clock.now);
      assert.ok(d.log.raw.some((l) => l.includes('active CA cannot be used; retiring it')));
    });

    it('after downtime past the CA expiry, replaces it at start and drops the expired root', async () => {
      const first = await d.start();
      const expired = activeOf(first.ca);
      await d.stop();
      d.clock.set(addSeconds(expired.notAfter, 60));
      const { ca, store } = await d.start();
      const [a] = ca.authorities();
      assert.equal(ca.authorities().length, 1);
      assert.notEqual(a!.id, expired.id);
      assert.equal(a!.state, 'active');
      assert.deepEqual(rootsOf(ca.bundle()), [a!.sha256Hex]);
      assert.equal(ca.bundle().sequence, 2, 'one change: never an empty bundle in between');
      assert.equal((await store.getBundle(TD))?.sequence, 2);
      assert.equal(d.keyFileContents().length, 1, 'the expired key was deleted');
    });
    it('starts with its working CA when a rotation step due at start fails, and retries on the next tick', async () => {
      const swapping = new SwappingKeyManager(DiskKeyManager.inDataDir(dir));
      const first = await d.start({ keyManager: swapping });
      const active = activeOf(first.ca);
      await d.stop();
      d.clock.set(rotationTimes(active).prepareAt);
      swapping.refuseNewKeys = true;
      const { ca } = await d.start({ keyManager: swapping });
      assert.equal(activeOf(ca).id, active.id);
      assert.deepEqual(
        ca.authorities().map((a) => a.state),
        ['active'],
      );
      assert.ok(d.log.raw.some((l) => l.includes('CA rotation step failed') && l.includes('ENOSPC')));
      swapping.refuseNewKeys = false;
      assert.ok((await ca.tick()).prepared);
    });

    it('on a data dir used for another trust domain, removes those CAs and keeps their roots out', async () => {
      const first = await d.start();
      const foreign = activeOf(first.ca);
      await d.stop();
      const { ca, store } = await d.start({ trustDomain: 'other.example' });
      assert.equal(ca.authorities().length, 1);
      assert.notEqual(activeOf(ca).id, foreign.id);
      assert.ok(!rootsOf(ca.bundle()).includes(foreign.sha256Hex));
      assert.equal(ca.bundle().sequence, 1);
      assert.equal((await store.getBundle('other.example'))?.sequence, 1);
      const svid = await ca.signX509Svid({
        spiffeId: 'spiffe://other.example/agent',
        publicKey: generateSigningKeyPair().publicKey,
        ttlSeconds: 60,
      });
      verifies(svid.chain, ca.bundle(), T0);
    });
  });

  describe('rotation driven by tick(now)', () => {
    it('prepares at 1/2, activates at 5/6, keeps the old root until it expires; sequence +1 per bundle change', async () => {
      const { ca, store } = await d.start();
      const sequences: number[] = [];
      ca.onBundleChange((b) => sequences.push(b.sequence!));
      const a1 = activeOf(ca);
      const t = rotationTimes(a1);

      let r: TickResult = await ca.tick(addSeconds(t.prepareAt, -1));
      assert.equal(r.prepared, undefined);
      assert.equal(ca.authorities().length, 1);

      r = await ca.tick(t.prepareAt);
      assert.ok(r.prepared);
      assert.deepEqual(
        ca.authorities().map((a) => a.state),
        ['active', 'prepared'],
      );
      const a2 = ca.authorities()[1]!;
      assert.equal(ca.bundle().sequence, 2);
      assert.deepEqual(
        rootsOf(ca.bundle()),
        [a1.sha256Hex, a2.sha256Hex],
        'the next root is published early',
      );

      r = await ca.tick(addSeconds(t.activateAt, -1));
      assert.equal(r.activated, undefined);
      assert.equal(activeOf(ca).id, a1.id);

      r = await ca.tick(t.activateAt);
      assert.equal(r.activated, a2.id);
      assert.deepEqual(
        ca.authorities().map((a) => [a.id, a.state]),
        [
          [a1.id, 'old'],
          [a2.id, 'active'],
        ],
      );
      assert.equal(ca.bundle().sequence, 2, 'activation does not change the roots');
      assert.deepEqual(
        (await store.listCaAuthorities()).map((x) => x.status),
        ['retired', 'active'],
      );

      // a2 began at a1's half-life minus the 10 s backdate, so its own half-life falls 10 s before a1's end:
      // the next CA (a3) is prepared while a1 is still in the bundle.
      assert.ok(rotationTimes(a2).prepareAt <= addSeconds(t.expiresAt, -1));
      r = await ca.tick(addSeconds(t.expiresAt, -1));
      const a3 = ca.authorities().find((a) => a.state === 'prepared')!;
      assert.equal(r.prepared, a3.id);
      assert.deepEqual(r.removed, []);
      assert.deepEqual(rootsOf(ca.bundle()), [a1.sha256Hex, a2.sha256Hex, a3.sha256Hex], 'old root kept');
      assert.equal(ca.bundle().sequence, 3);

      r = await ca.tick(t.expiresAt);
      assert.deepEqual(r.removed, [a1.id]);
      assert.deepEqual(rootsOf(ca.bundle()), [a2.sha256Hex, a3.sha256Hex]);
      assert.equal(ca.bundle().sequence, 4);
      assert.equal((await store.getBundle(TD))?.sequence, 4);
      assert.deepEqual(sequences, [2, 3, 4]);
      assert.equal(d.keyFileContents().length, 2, "the old CA's key went with it");
    });

    it('keeps SVIDs signed before a rotation verifiable with the bundle after it, and no SVID outlives its CA', async () => {
      const { ca } = await d.start();
      const issued: { svid: SignedX509Svid; caNotAfter: Date }[] = [];
      // Three full rotations, signing (with a TTL far longer than the CA's) just before each step.
      for (let round = 0; round < 3; round++) {
        const active = activeOf(ca);
        const t = rotationTimes(active);
        for (const at of [addSeconds(t.prepareAt, -1), addSeconds(t.activateAt, -1)]) {
          const svid = await sign(ca, at, 10 * CA_TTL);
          assert.equal(svid.authorityId, active.id);
          assert.equal(svid.leaf.notAfter.getTime(), active.notAfter.getTime(), 'capped by the CA');
          issued.push({ svid, caNotAfter: active.notAfter });
        }
        await ca.tick(t.prepareAt);
        await ca.tick(t.activateAt);
        assert.notEqual(activeOf(ca).id, active.id);
        const now = addSeconds(t.activateAt, 1);
        for (const { svid, caNotAfter } of issued) {
          if (now < caNotAfter) verifies(svid.chain, ca.bundle(), now);
        }
        await ca.tick(t.expiresAt);
        // Once its CA expired, the root leaves the bundle, and every SVID it signed has expired with it.
        assert.ok(!rootsOf(ca.bundle()).includes(active.sha256Hex));
        for (const { svid, caNotAfter } of issued.filter((i) => i.caNotAfter <= t.expiresAt)) {
          assert.throws(() => verifies(svid.chain, svid.bundle, addSeconds(caNotAfter, 1)), /expired/);
        }
      }
      assert.equal(issued.length, 6);
    });

    it('refuses to sign with a CA that expired because rotation never ran', async () => {
      const { ca } = await d.start();
      const a = activeOf(ca);
      await rejectsWithCodeAs(sign(ca, a.notAfter), CaError, ErrorCode.CA_NOT_READY);
      await ca.tick(a.notAfter);
      verifies((await sign(ca, a.notAfter)).chain, ca.bundle(), a.notAfter);
    });
  });

  describe('manual rotation (lanyard ca rotate)', () => {
    it('prepare() then activate() rotates at once; activate() with nothing prepared is ERR_CA_NOT_PREPARED', async () => {
      const { ca } = await d.start();
      await rejectsWithCodeAs(ca.activate(), CaError, ErrorCode.CA_NOT_PREPARED, /prepare one first/);
      const a1 = activeOf(ca);
      const before = await sign(ca, T0);
      const p = await ca.prepare();
      assert.equal(p.state, 'prepared');
      assert.equal(ca.bundle().sequence, 2);
      const activated = await ca.activate();
      assert.equal(activated.id, p.id);
      assert.equal(activated.state, 'active');
      assert.deepEqual(activated.activatedAt, T0);
      assert.equal(ca.authorities().find((a) => a.id === a1.id)?.state, 'old');
      verifies(before.chain, ca.bundle(), T0);
      assert.equal((await sign(ca, T0)).authorityId, p.id);
    });

    it('prepare() replaces a CA prepared earlier, taking its root out of the bundle and deleting its key', async () => {
      const { ca, keys } = await d.start();
      const p1 = await ca.prepare();
      const p2 = await ca.prepare();
      assert.notEqual(p1.id, p2.id);
      assert.deepEqual(
        ca.authorities().map((a) => a.state),
        ['active', 'prepared'],
      );
      assert.ok(!rootsOf(ca.bundle()).includes(p1.sha256Hex));
      assert.equal(ca.bundle().sequence, 3);
      assert.ok(!(await keys.listKeys()).includes(`x509-ca-${p1.id}`));
    });
  });

  describe('a failed commit changes nothing', () => {
    it('rolls back the CA record with the bundle, deletes the new key, and keeps memory as it was', async () => {
      const store = storeFailingMidCommit(await d.openStore());
      const keys = DiskKeyManager.inDataDir(dir);
      const ca = await CaManager.open({
        trustDomain: TD,
        store,
        keyManager: keys,
        caTtlSeconds: CA_TTL,
        clock: d.clock.read,
      });
      try {
        const before = ca.authorities();
        store.failBundleWrites = true;
        await rejectsWithCodeAs(ca.prepare(), LanyardError, ErrorCode.IO, /simulated/);
        assert.deepEqual(ca.authorities(), before);
        assert.equal(ca.bundle().sequence, 1);
        assert.deepEqual(
          (await store.listCaAuthorities()).map((r) => r.id),
          before.map((a) => a.id),
        );
        assert.equal((await store.getBundle(TD))?.sequence, 1);
        assert.deepEqual(await keys.listKeys(), [`x509-ca-${before[0]!.id}`]);
        store.failBundleWrites = false;
        await ca.prepare();
        assert.equal(ca.bundle().sequence, 2);
      } finally {
        await ca.close();
      }
    });
  });

  describe('self-test of every new CA', () => {
    it('refuses to prepare a CA whose stored key is not the key it was made with, and persists nothing', async () => {
      const swapping = new SwappingKeyManager(DiskKeyManager.inDataDir(dir));
      const { ca, store } = await d.start({ keyManager: swapping });
      const active = activeOf(ca);
      swapping.broken = true;
      await rejectsWithCodeAs(ca.prepare(), CaError, ErrorCode.CA_SELF_TEST_FAILED, /failed its self-test/);
      assert.deepEqual(
        ca.authorities().map((a) => a.id),
        [active.id],
      );
      assert.equal((await store.listCaAuthorities()).length, 1);
      assert.deepEqual(await swapping.listKeys(), [`x509-ca-${active.id}`], 'the new key was deleted again');
      assert.equal(ca.bundle().sequence, 1);
    });

    it('never activates a prepared CA that fails its self-test; the active CA keeps signing', async () => {
      const swapping = new SwappingKeyManager(DiskKeyManager.inDataDir(dir));
      const { ca } = await d.start({ keyManager: swapping });
      const active = activeOf(ca);
      const t = rotationTimes(active);
      await ca.tick(t.prepareAt);
      const prepared = ca.authorities().find((a) => a.state === 'prepared')!;
      swapping.broken = true;

      await rejectsWithCodeAs(ca.activate(t.prepareAt), CaError, ErrorCode.CA_SELF_TEST_FAILED);
      assert.equal(activeOf(ca).id, active.id);
      assert.ok(!ca.authorities().some((a) => a.id === prepared.id), 'the broken CA was discarded');
      assert.deepEqual(rootsOf(ca.bundle()), [active.sha256Hex]);

      // The timer path: still broken at activation time, so tick fails and nothing new is activated.
      await rejectsWithCodeAs(ca.tick(t.activateAt), CaError, ErrorCode.CA_SELF_TEST_FAILED);
      assert.equal(activeOf(ca).id, active.id);
      verifies((await sign(ca, t.activateAt)).chain, ca.bundle(), t.activateAt);

      // Once the key manager works again, the next tick rotates.
      swapping.broken = false;
      const r = await ca.tick(addSeconds(t.activateAt, 1));
      assert.ok(r.prepared && r.activated === r.prepared);
      assert.notEqual(activeOf(ca).id, active.id);
    });

    it('on a first start with a broken key manager, makes no CA and persists nothing', async () => {
      const swapping = new SwappingKeyManager(DiskKeyManager.inDataDir(dir));
      swapping.broken = true;
      await rejectsWithCodeAs(d.start({ keyManager: swapping }), CaError, ErrorCode.CA_SELF_TEST_FAILED);
      const store = await d.openStore();
      assert.deepEqual(await store.listCaAuthorities(), []);
      assert.equal(await store.getBundle(TD), undefined);
      assert.deepEqual(await swapping.listKeys(), []);
    });
  });

  describe('server SVID', () => {
    it('is spiffe://<td>/lanyard/server, renewed at half its lifetime and after each activation, with an event', async () => {
      const { ca } = await d.start({ serverSvidTtlSeconds: 120, serverDnsNames: ['lanyard.local'] });
      const changes: ServerSvid[] = [];
      ca.onServerSvidChange((s) => changes.push(s));
      const s1 = ca.serverSvid();
      assert.equal(s1.id.toString(), `spiffe://${TD}/lanyard/server`);
      const leaf = s1.chain[0]!;
      assert.deepEqual([...leaf.dnsSans], ['lanyard.local']);
      assert.match(serverTlsPem(s1).cert, /^-----BEGIN CERTIFICATE-----/);
      assert.equal(s1.privateKey.type, 'private');
      assert.ok(createPublicKey(s1.privateKey).equals(leaf.publicKey));
      verifies(
        s1.chain.map((c) => c.der),
        ca.bundle(),
        T0,
      );
      assert.deepEqual(s1.renewAt, addSeconds(T0, 60));

      await ca.tick(addSeconds(T0, 59));
      assert.equal(ca.serverSvid(), s1);
      await ca.tick(addSeconds(T0, 60));
      const s2 = ca.serverSvid();
      assert.notEqual(s2, s1);
      assert.deepEqual(changes, [s2]);
      verifies(
        s2.chain.map((c) => c.der),
        ca.bundle(),
        addSeconds(T0, 60),
      );

      await ca.prepare(addSeconds(T0, 61));
      await ca.activate(addSeconds(T0, 61));
      const s3 = ca.serverSvid();
      assert.equal(s3.authorityId, activeOf(ca).id);
      assert.deepEqual(changes, [s2, s3]);
    });

    it('is capped by the CA and renewed before the CA expires', async () => {
      const { ca } = await d.start({ serverSvidTtlSeconds: 10 * CA_TTL });
      const s = ca.serverSvid();
      assert.deepEqual(s.notAfter, activeOf(ca).notAfter);
      assert.ok(ca.nextCheckAt() <= s.renewAt);
    });
  });

  describe('no key material in errors or logs', () => {
    it('across start, rotations, a restart, failed self-tests and unreadable keys', async () => {
      const swapping = new SwappingKeyManager(DiskKeyManager.inDataDir(dir));
      const pems = new Set<string>();
      const collect = (): void => d.keyFileContents().forEach((p) => pems.add(p));
      const errors: unknown[] = [];

      let { ca } = await d.start({ keyManager: swapping });
      collect();
      const t = rotationTimes(activeOf(ca));
      await ca.tick(t.prepareAt);
      collect();
      await ca.tick(t.activateAt);
      collect();
      swapping.broken = true;
      await ca.prepare(t.activateAt).catch((e: unknown) => errors.push(e));
      swapping.broken = false;
      await ca.prepare(t.activateAt);
      collect();
      await d.stop();

      // Damage every key file: start-up must cope, and say so, without quoting them.
      for (const f of readdirSync(d.keysDir)) {
        const path = join(d.keysDir, f);
        rmSync(path);
        writeFileSync(path, 'garbage\n', { mode: 0o600 });
      }
      ({ ca } = await d.start({ keyManager: swapping }));
      collect();
      await ca.activate(t.activateAt).catch((e: unknown) => errors.push(e));
      await ca.tick(t.expiresAt);
      collect();

      assert.ok(errors.length >= 2, 'the negative paths ran');
      const fragments = secretFragments([...pems].filter((p) => p.includes('PRIVATE KEY')));
      fragments.push(...secretFragments(swapping.impostors));
      for (const e of errors) assertNoSecrets(errorText(e), fragments, `error ${String(e)}`);
      const log = d.log.raw.join('');
      assert.ok(log.includes('CA prepared') && log.includes('CA key unavailable'));
      assertNoSecrets(log, fragments, 'log');
      for (const f of readdirSync(d.keysDir)) {
        assert.equal(statSync(join(d.keysDir, f)).mode & 0o777, 0o600, f);
      }
    });
  });

  describe('lifecycle', () => {
    it('after close(), signing and rotation fail with ERR_CA_NOT_READY', async () => {
      const { ca } = await d.start();
      await ca.close();
      await rejectsWithCodeAs(sign(ca, T0), CaError, ErrorCode.CA_NOT_READY);
      await rejectsWithCodeAs(ca.tick(T0), CaError, ErrorCode.CA_NOT_READY);
      assert.throws(
        () => ca.bundle(),
        (e: unknown) => (e as CaError).code === ErrorCode.CA_NOT_READY,
      );
    });

    it('works with the memory key manager (no files at all)', async () => {
      const { ca } = await d.start({ keyManager: new MemoryKeyManager() });
      verifies((await sign(ca, T0)).chain, ca.bundle(), T0);
      assert.throws(() => readdirSync(d.keysDir));
    });

    it('startRotationTimer ticks when nextCheckAt is due, and stop() waits for a running tick', async () => {
      const { ca } = await d.start();
      d.clock.set(rotationTimes(activeOf(ca)).prepareAt);
      const results: TickResult[] = [];
      const timer = startRotationTimer(ca, { minIntervalMs: 5, onTick: (r) => results.push(r) });
      const deadline = Date.now() + 5000;
      while (results.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await timer.stop();
      assert.ok(results[0]?.prepared, 'the due preparation ran');
      assert.ok(ca.authorities().some((a) => a.state === 'prepared'));
    });
  });
});
