/**
 * The JWT-SVID signing key rotates with the CA's schedule (review finding 13.12): the next key is published
 * before it signs, the retired one stays published until every token it signed has expired, then it and its
 * private key go. Injected times throughout; a token signed before the rotation validates with the published
 * keys until it expires.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateJwtSvid } from '../../../src/agent/jwt-svid';
import { JWT_SVID_USE, X509Bundle } from '../../../src/bundle';
import { MemoryKeyManager } from '../../../src/ca';
import {
  JWT_CLOCK_SKEW_SECONDS,
  JwtAuthority,
  LEGACY_JWT_KEY_ID,
  MAX_JWT_SVID_TTL_SECONDS,
} from '../../../src/server/node/jwt-authority';
import { TrustDomain } from '../../../src/spiffe';
import { startTestServer } from '../../support/test-server';
import { connectPublic, watchBundle } from '../../support/public-client';

const TD = TrustDomain.parse('lanyard.local');
const T0 = new Date('2026-12-01T00:00:00.000Z');
const at = (s: number): Date => new Date(T0.getTime() + s * 1000);
const TTL = 600; // prepare at 300 s, activate at 500 s

function bundleOf(a: JwtAuthority): X509Bundle {
  return new X509Bundle(TD, { jwtAuthorities: a.authorities().map((k) => [k.keyId, k.publicKey] as const) });
}

function tokenAt(a: JwtAuthority, s: number): string {
  const iat = Math.floor(at(s).getTime() / 1000);
  return a.sign({ sub: 'spiffe://lanyard.local/w', aud: ['api'], iat, exp: iat + MAX_JWT_SVID_TTL_SECONDS });
}

const validAt = (token: string, bundle: X509Bundle, s: number): ReturnType<typeof validateJwtSvid> =>
  validateJwtSvid(token, 'api', (td) => (td.name === TD.name ? bundle : undefined), at(s));

describe('JWT-SVID key rotation', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-jwt-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('publishes the next key before it signs, and keeps the retired one until its last token expired', async () => {
    const keys = new MemoryKeyManager();
    const stateFile = path.join(dir, 'jwt-keys.json');
    const a = await JwtAuthority.open(keys, { keyTtlSeconds: TTL, stateFile, clock: () => T0 });
    const first = a.keyId;
    assert.equal(fs.statSync(stateFile).mode & 0o777, 0o600);
    assert.deepEqual(await a.tick(at(299)), { removed: [] });

    const prepared = await a.tick(at(300));
    assert.ok(prepared.prepared !== undefined && prepared.prepared !== first);
    assert.equal(a.keyId, first, 'a prepared key does not sign yet');
    assert.deepEqual(
      a.jwks().map((k) => [k.kid, k.use]),
      [
        [first, JWT_SVID_USE],
        [prepared.prepared, JWT_SVID_USE],
      ],
      'but verifiers already have it',
    );

    const before = tokenAt(a, 450); // the last minutes of the first key
    const activated = await a.tick(at(500));
    assert.equal(activated.activated, prepared.prepared);
    assert.equal(a.keyId, prepared.prepared);
    const after = tokenAt(a, 500);
    assert.notEqual(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid, first);

    // Until it expires (450 + 300 = 750 s), the token signed before the rotation verifies with what is published.
    assert.equal(validAt(before, bundleOf(a), 749).spiffeId.toString(), 'spiffe://lanyard.local/w');
    assert.equal(validAt(after, bundleOf(a), 749).spiffeId.toString(), 'spiffe://lanyard.local/w');

    // The retired key is published until retirement + the longest token lifetime + skew; then it goes.
    const gone = 500 + MAX_JWT_SVID_TTL_SECONDS + JWT_CLOCK_SKEW_SECONDS;
    assert.deepEqual((await a.tick(at(gone - 1))).removed, []);
    assert.ok(a.authorities().some((k) => k.keyId === first && k.state === 'retired'));
    assert.deepEqual((await a.tick(at(gone))).removed, [first]);
    assert.equal(
      a.authorities().some((k) => k.keyId === first),
      false,
    );
    assert.equal(a.keyId, prepared.prepared);
    assert.throws(() => validAt(before, bundleOf(a), 700), /no JWT authority with kid/);
    assert.equal(
      (await keys.listKeys()).length,
      a.authorities().length,
      'the retired private key is deleted (the keys left: the active one and its prepared successor)',
    );

    // A restart finds the same state.
    const reopened = await JwtAuthority.open(keys, { keyTtlSeconds: TTL, stateFile, clock: () => at(gone) });
    assert.equal(reopened.keyId, a.keyId);
    assert.deepEqual(
      reopened.authorities().map((k) => k.keyId),
      a.authorities().map((k) => k.keyId),
    );
  });

  it('after downtime past every key, a new key signs at once; the expired ones are gone', async () => {
    const keys = new MemoryKeyManager();
    const stateFile = path.join(dir, 'downtime.json');
    const a = await JwtAuthority.open(keys, { keyTtlSeconds: TTL, stateFile, clock: () => T0 });
    const old = a.keyId;
    const b = await JwtAuthority.open(keys, { keyTtlSeconds: TTL, stateFile, clock: () => at(10 * TTL) });
    assert.notEqual(b.keyId, old);
    assert.deepEqual(
      b.authorities().map((k) => [k.keyId, k.state]),
      [[b.keyId, 'active']],
    );
  });

  it('a data dir from before rotation keeps its key (and its tokens) as the active one', async () => {
    const keys = new MemoryKeyManager();
    const legacy = await keys.generateKey(LEGACY_JWT_KEY_ID, 'ec-p256');
    const a = await JwtAuthority.open(keys, {
      keyTtlSeconds: TTL,
      stateFile: path.join(dir, 'legacy.json'),
      clock: () => T0,
    });
    assert.deepEqual(a.publicKey.export({ format: 'jwk' }), legacy.publicKey.export({ format: 'jwk' }));
  });

  it('a server publishes every JWT key in the bundle through a rotation, and watchers get it at once', async function () {
    this.timeout(60_000);
    const s = await startTestServer();
    const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD.name);
    const watch = watchBundle(pub);
    try {
      await watch.next(1);
      const jwtKids = async (): Promise<string[]> =>
        (
          JSON.parse((await s.client.getBundle()).bundle!.spiffeBundleJson) as {
            keys: { use: string; kid: string }[];
          }
        ).keys
          .filter((k) => k.use === JWT_SVID_USE)
          .map((k) => k.kid);
      const first = s.running.jwt.keyId;
      assert.deepEqual(await jwtKids(), [first]);
      // Past half the key's life (ca.ttl): the next key is prepared and published with the first.
      const half = new Date(Date.now() + (s.config.caTtlSeconds / 2 + 60) * 1000);
      const r = await s.running.jwt.tick(half);
      assert.deepEqual(await jwtKids(), [first, r.prepared]);
      // Same roots, one more key: the watch stream sends the new document without waiting for a CA change.
      const pushed = JSON.parse((await watch.next(2)).bundle!.spiffeBundleJson) as {
        keys: { kid?: string }[];
      };
      assert.ok(pushed.keys.some((k) => k.kid === r.prepared));
    } finally {
      watch.cancel();
      pub.close();
      await s.stop();
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
  });
});
