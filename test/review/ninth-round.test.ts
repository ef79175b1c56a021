/**
 * Review of the ninth round's fast paths (issue 15): renewals with a new key recognised from a kept leaf, the
 * verdict createHopTlsServer keeps per peer leaf across connections, the CSR checked in the signing request that
 * signs the renewal, and the revocation state read as SQLite records with a chunk read ahead. Each test gives a
 * fast path hostile input and holds its answer to the one the full (slow) path gives: the same refusal, or the
 * same acceptance with the same fields handed to the caller.
 */
import assert from 'node:assert/strict';
import { ECDH, generateKeyPairSync } from 'node:crypto';
import * as path from 'node:path';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { ServerX509Source } from '../../src/client/server-x509-source';
import type { SessionX509Source } from '../../src/client/handoff';
import { startSession } from '../../src/hop/handoff';
import { unpackRevocations } from '../../src/internal/revocation-page';
import { WorkerSnapshotReader } from '../../src/server/sessions/revocation-snapshot';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { ParsedCertificate } from '../../src/x509/certificate';
import { createCsr } from '../../src/x509/csr';
import { generateSigningKeyPair } from '../../src/x509/keys';
import { ErrorCode } from '../../src/errors';
import { createHopTlsServer, type HopServerOptions } from '../../src/hop/tls';
import {
  authorizeAny,
  authorizeId,
  type RevocationChecker,
  VerificationCache,
  verifyX509Svid,
} from '../../src/verify';
import { RevocationCache } from '../../src/verify/revocation-cache';
import { subjectKeyIdOf } from '../../src/x509/der-extensions';
import {
  closeServer,
  handOff,
  id as hopId,
  listenLocal,
  pkiSource,
  TD as HOP_TD,
  tlsExchange,
  workloadSource,
} from '../support/hop';
import { rejectsGrpcWithCode } from '../support/grpc-refusal';
import { connectPublic, renewCall, type ClientIdentity } from '../support/public-client';
import { hostileCsr } from '../support/raw-csr';
import { startTestServer, type TestServer } from '../support/test-server';
import { removeDir, tempDir } from '../support/tmp';
import {
  baseContext,
  createPki,
  HOUR,
  issueSvid,
  makeCertDer,
  newKey,
  NOW,
  plannerChain,
  renewHop,
  svidLeafFields,
  TD as KIT_TD,
  type CertSpec,
  type KeyPair,
  type Svid,
} from '../support/pki';
import { resigned, tbsOffsets } from '../support/resign';
import { verifyOutcome } from '../support/refusal';
import { verdictOf } from '../support/verdict';

const TD = 'ninth.example';

/** A subjectKeyIdentifier extension as CertSpec's `extra` takes it. */
const keyIdExtension = (keyId: Uint8Array): { oid: string; critical: boolean; value: Uint8Array } => ({
  oid: '2.5.29.14',
  critical: false,
  value: Uint8Array.from([0x04, keyId.length, ...keyId]),
});

const spkiOf = (key: KeyPair): Uint8Array =>
  new Uint8Array(key.publicKey.export({ type: 'spki', format: 'der' }));

/** The P-256 SubjectPublicKeyInfo of `key` with its point compressed (SEC 1 §2.3.3): the same key, other bytes. */
function compressedSpki(key: KeyPair): Uint8Array {
  const jwk = key.publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([
    Buffer.of(4),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ]);
  const compressed = ECDH.convertKey(point, 'prime256v1', undefined, undefined, 'compressed') as Buffer;
  const algorithm = Buffer.from('301306072a8648ce3d020106082a8648ce3d030107', 'hex');
  const bits = Buffer.concat([Buffer.of(0x03, compressed.length + 1, 0x00), compressed]);
  return Uint8Array.from([0x30, algorithm.length + bits.length, ...algorithm, ...bits]);
}

/** A P-256 key's SubjectPublicKeyInfo with the curve's parameters written out (RFC 5480 forbids them). */
function explicitCurveSpki(): Uint8Array {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', paramEncoding: 'explicit' });
  return new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
}

describe('review: the ninth round’s fast paths answer as the full path does', () => {
  describe('renewals with a new key, recognised from a kept leaf', () => {
    /** Issued at the clock's time by the production profile: the identifier is subjectKeyIdOf the key. */
    const live = createPki(TD);
    const id = `spiffe://${TD}/rotating`;
    const issued = (key: KeyPair = newKey()): Uint8Array =>
      issueSvid(live, id, { key, ttlSeconds: 600 }).cert.der;
    /** A cache keeping a leaf of `make` (two leaves, two keys: the second is kept). */
    const primedWith = (make: () => Uint8Array, at?: Date, p = live): VerificationCache => {
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++) verifyX509Svid([make(), p.intermediate.cert.der], p.bundle, { cache, at });
      assert.equal(cache.stats().renewals.size, 1, 'the second leaf with these extensions is kept');
      return cache;
    };

    it('answers a CA-signed leaf one tbsCertificate byte away from a new-key renewal as the full path does', function () {
      this.timeout(120_000);
      const base = issued(newKey());
      const offsets = tbsOffsets(base);
      const inside = (i: number, [from, to]: [number, number]): boolean => i >= from && i < to;
      let hits = 0;
      let variants = 0;
      let accepted = 0;
      for (let i = 0; i < offsets.length; i++) {
        const der = resigned(
          base,
          (tbs) => {
            tbs[i] = tbs[i]! ^ 0x01;
            return tbs;
          },
          live.intermediate.key.privateKey,
        );
        variants++;
        const chain = [der, live.intermediate.cert.der];
        const cold = verdictOf(chain, live.bundle, { cache: null });
        const cache = primedWith(() => issued());
        const warm = verdictOf(chain, live.bundle, { cache });
        assert.equal(warm, cold, `tbsCertificate byte ${i} flipped`);
        if (cold.startsWith('accepted')) accepted++;
        const hit = cache.stats().renewals.hits;
        hits += hit;
        if (hit > 0) {
          assert.ok(
            inside(i, offsets.serial) || inside(i, offsets.validity),
            `byte ${i} (outside the serial and the validity) flipped, taken for a renewal`,
          );
        }
      }
      assert.ok(variants > 300, `${variants} variants`);
      assert.ok(accepted > 0 && hits > 0, `accepted ${accepted}, renewals ${hits}: the fast path was met`);
    });

    it('answers new keys of other curves and types, and refused keys, as the full path does', function () {
      this.timeout(60_000);
      const pki = createPki(TD, { now: new Date(NOW.getTime() - HOUR) });
      const inter = pki.intermediate;
      const marker = { oid: '1.3.6.1.4.1.55555.9', critical: false, value: Uint8Array.of(0x05, 0x00) };
      /** A leaf with `spki`, its identifier subjectKeyIdOf `keyIdOf` (default the same SPKI) where Lanyard puts it. */
      const built = (key: KeyPair, spki: Uint8Array, extra?: CertSpec['extra']): Uint8Array =>
        makeCertDer({
          ...svidLeafFields(id),
          issuer: inter,
          key,
          spkiDer: spki,
          subjectKeyId: false,
          extra: extra ?? [keyIdExtension(subjectKeyIdOf(spki)), marker],
        }).der;
      const p521 = newKey('ec-p521');
      const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const newKeyLeaf = (): Uint8Array => {
        const k = newKey();
        return built(k, spkiOf(k));
      };
      /** What a cold verification says, and whether the renewal path may answer (only for the kept bytes). */
      const cases: [string, () => Uint8Array, string, 'hit' | 'miss'][] = [
        ['a P-384 key', () => built(newKey(), spkiOf(newKey('ec-p384'))), 'accepted', 'hit'],
        ['an Ed25519 key', () => built(newKey(), spkiOf(newKey('ed25519'))), 'accepted', 'hit'],
        [
          'a P-256 key, its point compressed, the identifier of those bytes',
          () => {
            const k = newKey();
            return built(k, compressedSpki(k));
          },
          'accepted',
          'hit',
        ],
        [
          'a P-256 key, its point compressed, the identifier of its uncompressed encoding',
          () => {
            const k = newKey();
            return built(k, compressedSpki(k), [keyIdExtension(subjectKeyIdOf(spkiOf(k))), marker]);
          },
          'accepted',
          'miss',
        ],
        [
          'the key’s whole SHA-256 as its identifier',
          () => built(newKey(), spkiOf(newKey()), [keyIdExtension(new Uint8Array(32).fill(1)), marker]),
          'accepted',
          'miss',
        ],
        [
          'explicit curve parameters',
          () => built(newKey(), explicitCurveSpki()),
          'ERR_UNSUPPORTED_KEY',
          'miss',
        ],
        ['a P-521 key', () => built(p521, spkiOf(p521)), 'ERR_UNSUPPORTED_KEY', 'miss'],
        ['a 1024-bit RSA key', () => built(newKey(), spkiOf(rsa1024)), 'ERR_UNSUPPORTED_KEY', 'miss'],
        [
          'two identifiers, both the key’s',
          () => {
            const k = newKey();
            const ski = keyIdExtension(subjectKeyIdOf(spkiOf(k)));
            return built(k, spkiOf(k), [ski, ski, marker]);
          },
          'ERR_MALFORMED_CERTIFICATE',
          'miss',
        ],
      ];
      for (const [what, make, outcome, path] of cases) {
        const cache = primedWith(newKeyLeaf, NOW, pki);
        const chain = [make(), inter.cert.der];
        const cold = verdictOf(chain, pki.bundle, { at: NOW, cache: null });
        assert.equal(cold.split(' ')[0], outcome, `${what}: the cold verdict`);
        assert.equal(verdictOf(chain, pki.bundle, { at: NOW, cache }), cold, what);
        assert.equal(
          cache.stats().renewals.hits,
          path === 'hit' ? 1 : 0,
          `${what}: answered by the renewal path`,
        );
      }
    });

    it('refuses a delegated leaf renewed with a new key, however often its twin with the bound key passed', () => {
      const pki = createPki(TD);
      const hop = plannerChain(pki)[2]!;
      const cache = new VerificationCache({ chains: false });
      for (let i = 0; i < 2; i++)
        verifyX509Svid([renewHop(pki, hop), pki.intermediate.cert.der], pki.bundle, { cache });
      assert.equal(cache.stats().renewals.size, 1);
      // The same context (whose last link names the bound key), another key: every byte but the key's and its
      // identifier's is the kept leaf's.
      for (const key of [newKey(), newKey('ec-p384'), newKey('ed25519')]) {
        const chain = [renewHop(pki, hop, { key }), pki.intermediate.cert.der];
        const cold = verdictOf(chain, pki.bundle, { cache: null });
        assert.equal(cold, 'ERR_DELEGATION_LINK_INVALID');
        assert.equal(verdictOf(chain, pki.bundle, { cache }), cold);
      }
      assert.equal(cache.stats().renewals.hits, 0);
      // The bound key is still a renewal, and the kept leaf's key remembered is not replaced by a refused one.
      const chain = [renewHop(pki, hop), pki.intermediate.cert.der];
      assert.equal(verdictOf(chain, pki.bundle, { cache }), verdictOf(chain, pki.bundle, { cache: null }));
      assert.equal(cache.stats().renewals.hits, 1);
    });
  });

  /**
   * createHopTlsServer keeps its verdict per peer leaf across connections (connection-chain.ts HandshakeChains,
   * kept-verdict.ts): each handshake after the first with the same leaf is answered from it while the clock, the
   * bundle object, revocation and the service's own SVID say it still holds.
   */
  describe('the verdict a hop TLS server keeps per peer leaf', function () {
    this.timeout(60_000);
    const closers: (() => Promise<void>)[] = [];
    after(async () => {
      for (const c of closers.reverse()) await c();
    });

    /** A hop TLS server answering each accepted peer with its SPIFFE ID; its denials' reasons, in order. */
    async function echoServer(
      options: Omit<HopServerOptions, 'authorize' | 'onDecision'> &
        Partial<Pick<HopServerOptions, 'authorize'>>,
    ): Promise<{ talk: (client: Svid, roots: string) => Promise<string>; denied: string[] }> {
      const denied: string[] = [];
      const server: tls.Server = createHopTlsServer(
        {
          authorize: authorizeAny(),
          ...options,
          onDecision: (d) => {
            if (d.decision === 'deny') denied.push(d.reason ?? '');
          },
        },
        (socket, peer) => socket.end(peer.spiffeId),
      );
      const port = await listenLocal(server);
      closers.push(() => closeServer(server));
      return { talk: async (client, roots) => (await tlsExchange(port, client, roots)).reply, denied };
    }

    it('refuses a leaf it accepted before once its session ends, or once its issuer is revoked', async () => {
      // baseContext names the kit's trust domain as the issuing server's.
      const pki = createPki(KIT_TD);
      const roots = pki.bundle.toPem();
      const sessions = new RevocationCache({ checkIntervalMs: 0 });
      sessions.applyFullState([], 0, new Date());
      const revokedIssuers = new Set<string>();
      const revocation: RevocationChecker = {
        isRevoked: (q) =>
          q.issuerSha256Hex !== undefined && revokedIssuers.has(q.issuerSha256Hex)
            ? true
            : sessions.isRevoked(q),
      };
      const { talk, denied } = await echoServer({
        source: pkiSource(issueSvid(pki, `spiffe://${KIT_TD}/api`), pki.bundle),
        revocation,
      });
      const peerOf = (name: string, sessionId: string): Svid =>
        issueSvid(pki, `spiffe://${KIT_TD}/agent/${name}`, {
          context: baseContext({ sessionId, scopes: ['docs:read'] }),
        });
      const ending = peerOf('ending', 'session-ending');
      const staying = peerOf('staying', 'session-staying');
      for (let i = 0; i < 2; i++) {
        assert.equal(await talk(ending, roots), ending.id);
        assert.equal(await talk(staying, roots), staying.id);
      }
      sessions.applyIncrement(
        [{ sequence: 1, kind: 'session', id: 'session-ending', expiresAt: new Date(Date.now() + HOUR) }],
        1,
      );
      assert.equal(await talk(ending, roots), '', 'a leaf of an ended session was accepted again');
      assert.equal(await talk(staying, roots), staying.id);
      assert.deepEqual(denied, [ErrorCode.REVOKED]);
      revokedIssuers.add(pki.intermediate.cert.sha256Hex);
      assert.equal(await talk(staying, roots), '', 'a leaf under a revoked issuer was accepted again');
      assert.deepEqual(denied, [ErrorCode.REVOKED, ErrorCode.REVOKED]);
    });

    it('answers a leaf by the chain it came with: the same leaf with another chain is judged by that chain', async () => {
      const pki = createPki(TD);
      const roots = pki.bundle.toPem();
      // An intermediate the service does not hold, under the same root and with the same name as its own.
      const sibling = createPki(TD, { root: pki.root });
      const { talk, denied } = await echoServer({
        source: pkiSource(issueSvid(pki, `spiffe://${TD}/api`), pki.bundle),
      });
      const peer = issueSvid(sibling, `spiffe://${TD}/sibling`);
      const leafOnly: Svid = { ...peer, chain: [peer.cert] };
      const wrongIssuer: Svid = { ...peer, chain: [peer.cert, pki.intermediate.cert] };
      for (let i = 0; i < 2; i++) {
        assert.equal(await talk(peer, roots), peer.id);
        assert.equal(await talk(leafOnly, roots), '', 'the leaf without its intermediate was accepted');
        assert.equal(
          await talk(wrongIssuer, roots),
          '',
          'the leaf under the wrong intermediate was accepted',
        );
      }
      assert.equal(denied.length, 4);
      assert.ok(
        denied.every((d) => d === ErrorCode.SIGNATURE_INVALID),
        denied.join(),
      );
    });

    it('refuses a federated peer it accepted before once its domain’s bundle is gone', async () => {
      const pki = createPki(TD);
      const fed = createPki('federated.example');
      const source = pkiSource(issueSvid(pki, `spiffe://${TD}/api`), [pki.bundle, fed.bundle]);
      // The federated intermediate is one the service holds: the leaf alone verifies, and its verdict is kept.
      const { talk, denied } = await echoServer({
        source,
        federatedTrustDomains: [fed.trustDomain],
        intermediates: [fed.intermediate.cert.der],
      });
      const peer = issueSvid(fed, 'spiffe://federated.example/caller');
      const roots = pki.bundle.toPem();
      for (let i = 0; i < 3; i++) assert.equal(await talk(peer, roots), peer.id);
      source.set(source.getX509Svid(), [pki.bundle]);
      assert.equal(await talk(peer, roots), '', 'a peer of a domain whose bundle is gone was accepted again');
      assert.deepEqual(denied, [ErrorCode.BUNDLE_NOT_FOUND]);
    });

    it('two servers share nothing: what one accepted, another over the same source refuses by its own options', async () => {
      const pki = createPki(TD);
      const roots = pki.bundle.toPem();
      // One source object (the same SVID, the same bundle) behind three servers that differ only in options.
      const source = pkiSource(issueSvid(pki, `spiffe://${TD}/api`), pki.bundle);
      const a = await echoServer({ source });
      const b = await echoServer({ source, trustDomain: 'elsewhere.example' });
      const c = await echoServer({ source, authorize: authorizeId(`spiffe://${TD}/someone-else`) });
      const peer = issueSvid(pki, `spiffe://${TD}/caller`);
      for (let i = 0; i < 3; i++) {
        assert.equal(await a.talk(peer, roots), peer.id);
        assert.equal(await b.talk(peer, roots), '', 'accepted by a server of another trust domain');
        assert.equal(await c.talk(peer, roots), '', 'accepted by a server whose authorizer refuses it');
      }
      assert.deepEqual(a.denied, []);
      assert.deepEqual(b.denied, Array(3).fill(ErrorCode.WRONG_TRUST_DOMAIN));
      assert.equal(c.denied.length, 3);
    });
  });

  /**
   * Renew checks the CSR where the leaf is signed, in one signing-pool request (csr-subject.ts, signing-worker.ts),
   * with the delegated session's key pinned (renew.ts sameKeyAs). Over gRPC, with the CA signing on the server's
   * thread and in two worker threads: the same refusals, and nothing a CSR asks for beyond its key.
   */
  for (const workers of [0, 2]) {
    describe(`Renew of a delegated session: the CSR checked in the signing request (${workers} signing workers)`, function () {
      this.timeout(120_000);
      let s: TestServer;
      let planner: ServerX509Source;
      let tool: ServerX509Source;
      const open: { close(): Promise<void> }[] = [];
      before(async () => {
        s = await startTestServer({ config: { caSigningWorkers: workers } });
        assert.equal(s.running.ca.signingWorkers, workers);
        const retry = { retry: { initialMs: 100, maxMs: 500 } };
        planner = await workloadSource(
          s,
          'planner',
          {
            allowedScopes: ['docs:read', 'tools:run'],
            maxDelegationDepth: 2,
            allowedDelegates: [hopId('tool-runner')],
          },
          retry,
        );
        tool = await workloadSource(
          s,
          'tool-runner',
          { allowedScopes: ['docs:read'], maxDelegationDepth: 1 },
          retry,
        );
      });
      after(async () => {
        for (const o of open.reverse()) await o.close();
        await Promise.all([planner, tool].map((x) => x.close()));
        await s.stop();
      });

      it('refuses a CSR for another key, one naming the bound key without holding it, and a bad signature', async () => {
        const root = await startSession({
          server: s.running.publicAddress,
          source: planner,
          scopes: ['docs:read', 'tools:run'],
          intent: 'delegate, then renew with hostile CSRs',
        });
        open.push(root);
        const { child, key } = await handOff(s, root, 'tool-runner', tool, ['docs:read'], {
          retry: { initialMs: 100, maxMs: 500 },
        });
        open.push(child as SessionX509Source);
        const presented = child.getX509Svid();
        const bound = presented.chain[0]!.spkiDer;
        const identity: ClientIdentity = { key: key.privateKey, chain: presented.chain.map((c) => c.der) };
        const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), HOP_TD, identity);
        try {
          const other = generateSigningKeyPair('ec-p256').privateKey;
          const refusals: [string, Buffer, string, string][] = [
            [
              'a CSR for another key',
              Buffer.from(createCsr(other).der),
              'ERR_INVALID_ARGUMENT',
              'was delegated to this key',
            ],
            [
              'a CSR naming the bound key, signed by another',
              Buffer.from(hostileCsr(other, { spkiDer: bound })),
              'ERR_CSR_SIGNATURE_INVALID',
              '',
            ],
            [
              'a CSR for another key asking for the caller’s own ID',
              Buffer.from(hostileCsr(other, { uris: [child.getX509Svid().id.toString()] })),
              'ERR_INVALID_ARGUMENT',
              'was delegated to this key',
            ],
          ];
          const tampered = Buffer.from(createCsr(key.privateKey).der);
          tampered[tampered.length - 3]! ^= 0x01; // inside the signature: framing intact, proof of possession broken
          refusals.push([
            'a CSR for the bound key with a bad signature',
            tampered,
            'ERR_CSR_SIGNATURE_INVALID',
            '',
          ]);
          for (const [, csr, code, fragment] of refusals) {
            const fragments = fragment === '' ? [] : [fragment];
            await rejectsGrpcWithCode(renewCall(pub, csr), grpc.status.INVALID_ARGUMENT, code, ...fragments);
          }
          // A CSR for the bound key asking for an ID of another trust domain gets the caller's own SVID, for that key.
          const renewed = await renewCall(
            pub,
            Buffer.from(
              hostileCsr(key.privateKey, { uris: ['spiffe://other.example/admin'], subjectCn: 'admin' }),
            ),
          );
          const leaf = ParsedCertificate.fromDer(renewed.svid!.certChain[0]!);
          assert.deepEqual(leaf.uriSans, [presented.id.toString()]);
          assert.ok(Buffer.from(leaf.spkiDer).equals(Buffer.from(bound)));
          assert.ok(!Buffer.from(leaf.subjectDer).includes(Buffer.from('admin')));
        } finally {
          pub.close();
        }
      });
    });
  }

  /**
   * The snapshot worker reads each chunk as one SQLite buffer of records and reads the next chunk ahead after a
   * full, gap-free one (revocation-records.ts, revocation-snapshot-worker.ts). Paged from sequence 0 while
   * revocations are added and expired ones pruned between the pages, what it hands out must hold every live
   * revocation exactly once, in order: a chunk held from before a prune may still carry a row pruned since (an
   * expired revocation, harmless), never lack one or carry one twice.
   */
  describe('the revocation state paged by the snapshot worker while it changes', function () {
    this.timeout(60_000);
    let dir: string;
    let store: SqliteStore;
    let reader: WorkerSnapshotReader | undefined;
    beforeEach(async () => {
      dir = tempDir('ninth-snapshot');
      store = await SqliteStore.open({ file: path.join(dir, 'lanyard.db') });
    });
    afterEach(async () => {
      reader?.close();
      await store.close();
      removeDir(dir);
    });

    let made = 0;
    /** `n` revocations, those at the indexes `expired` lists already past their expiry (the next prune takes them). */
    const revoke = async (n: number, expired: readonly number[] = []): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const k = made++;
        await store.addRevocation(
          {
            kind: k % 3 === 0 ? 'session' : 'certificate',
            id: k % 3 === 0 ? `session-${k}` : (0xb000 + k).toString(16),
            reason: k % 2 === 0 ? 'ended' : 'key compromise',
            expiresAt: new Date(Date.now() + (expired.includes(i) ? -60_000 : HOUR)),
          },
          new Date(),
        );
      }
    };
    /** Lets the worker read the next chunk ahead before the test changes the store (not a timing assertion). */
    const aheadRead = (): Promise<void> => new Promise((r) => setTimeout(r, 300));

    for (const limit of [1, 5]) {
      it(`hands out every live revocation once, in order, across prunes and additions (chunks of ${limit})`, async () => {
        made = 0;
        // Expired rows in the second and later chunks: pruned only after the worker may have read them ahead.
        await revoke(6 * limit + 2, [limit + 1, 2 * limit + 1, 3 * limit, 4 * limit + 1]);
        const worker = new WorkerSnapshotReader(store.file, () => store.durableBarrier());
        reader = worker;
        const delivered: { sequence: number; id: string; expiresAtMs: number }[] = [];
        let after = 0;
        for (let step = 0; ; step++) {
          const read = await worker.read(after, limit, 4096);
          const rows = read.pages.flatMap((p) => unpackRevocations(p.bytes));
          assert.equal(rows.length, read.rows);
          delivered.push(...rows);
          if (read.rows < limit) break;
          after = rows[rows.length - 1]!.sequence;
          await aheadRead();
          // Between the pages: a prune (at the second step) and new revocations (every other step).
          if (step === 1) await store.pruneRevocations(new Date());
          if (step % 2 === 0) await revoke(limit);
        }
        const now = Date.now();
        const sequences = delivered.map((r) => r.sequence);
        assert.deepEqual(
          sequences,
          [...new Set(sequences)].sort((a, b) => a - b),
          'duplicated or out of order',
        );
        const live = await store.listRevocations(0, 100_000);
        const got = new Map(delivered.map((r) => [r.sequence, r.id]));
        for (const r of live)
          assert.equal(got.get(r.sequence), r.id, `live revocation ${r.sequence} missing`);
        const stored = new Set(live.map((r) => r.sequence));
        for (const r of delivered) {
          if (!stored.has(r.sequence))
            assert.ok(r.expiresAtMs < now, `${r.sequence}: neither stored nor expired`);
        }
      });
    }

    it('answers a watcher asking for another sequence than the chunk read ahead with that sequence’s rows', async () => {
      made = 0;
      await revoke(12);
      const worker = new WorkerSnapshotReader(store.file, () => store.durableBarrier());
      reader = worker;
      const ids = async (after: number): Promise<string[]> =>
        (await worker.read(after, 4, 4096)).pages.flatMap((p) => unpackRevocations(p.bytes).map((r) => r.id));
      const expected = async (after: number): Promise<string[]> =>
        (await store.listRevocations(after, 4)).map((r) => r.id);
      // Each read holds the chunk after it; the next watcher starts elsewhere (from 0, then past the end).
      for (const after of [0, 0, 2, 4, 4, 9, 0, 12, 8]) {
        assert.deepEqual(await ids(after), await expected(after), `after ${after}`);
        await aheadRead();
      }
    });
  });

  /**
   * Found by this review: the revocation question kept with a verdict (the chain memo's, and the one
   * createHopTlsServer keeps per peer leaf) named the leaf's certificate hash lazily, a getter hashing the leaf's
   * `der` when a checker first read it. That leaf object is the one every caller answered from the verdict is
   * handed (`peer.chain[0]`, `result.chain[0]`), and its bytes cannot be frozen: a handler that wiped or edited
   * them before any checker had read the hash changed the question for every later answer. A checker that
   * revokes by certificate hash (RevocationQuery.certSha256Hex) then let the revoked leaf through.
   */
  describe('the revocation question kept with a verdict names the leaf as verified', () => {
    /** Revokes by certificate hash; reads the hash only once something is revoked, as a short-circuit would. */
    const byHash = (): { checker: RevocationChecker; revoked: Set<string> } => {
      const revoked = new Set<string>();
      return { checker: { isRevoked: (q) => revoked.size > 0 && revoked.has(q.certSha256Hex) }, revoked };
    };

    it('the chain memo refuses a leaf revoked by hash after a caller wiped the bytes it was handed', () => {
      const pki = createPki(TD);
      const s = issueSvid(pki, `spiffe://${TD}/wiped`);
      const chain = s.chain.map((c) => c.der);
      const cache = new VerificationCache();
      const { checker, revoked } = byHash();
      const results = [0, 1, 2].map(() => verifyX509Svid(chain, pki.bundle, { cache, revocation: checker }));
      assert.equal(cache.stats().chains.hits, 1, 'the third answered by the memo');
      assert.equal(results[2], results[1], 'the memo hands out the result it kept');
      results[2]!.chain[0]!.der.fill(0); // a caller wipes what it was handed
      revoked.add(s.cert.sha256Hex);
      const cold = verifyOutcome(chain, pki.bundle, { cache: null, revocation: checker });
      assert.equal(cold, 'ERR_REVOKED');
      assert.equal(verifyOutcome(chain, pki.bundle, { cache, revocation: checker }), cold);
    });

    it('a hop TLS server refuses a leaf revoked by hash after its handler wiped the bytes it was handed', async function () {
      this.timeout(30_000);
      const pki = createPki(TD);
      const roots = pki.bundle.toPem();
      const { checker, revoked } = byHash();
      const server = createHopTlsServer(
        {
          source: pkiSource(issueSvid(pki, `spiffe://${TD}/api`), pki.bundle),
          authorize: authorizeAny(),
          revocation: checker,
        },
        (socket, peer) => {
          // Done with the peer's certificate: wipe it, as code handling key material often does.
          peer.chain[0]!.der.fill(0);
          socket.end(peer.spiffeId);
        },
      );
      const port = await listenLocal(server);
      try {
        const client = issueSvid(pki, `spiffe://${TD}/wiped`);
        for (let i = 0; i < 2; i++) assert.equal((await tlsExchange(port, client, roots)).reply, client.id);
        revoked.add(client.cert.sha256Hex);
        const chain = client.chain.map((c) => c.der);
        assert.equal(verifyOutcome(chain, pki.bundle, { cache: null, revocation: checker }), 'ERR_REVOKED');
        assert.equal(
          (await tlsExchange(port, client, roots)).reply,
          '',
          'a leaf revoked by its hash was accepted',
        );
      } finally {
        await closeServer(server);
      }
    });
  });
});
