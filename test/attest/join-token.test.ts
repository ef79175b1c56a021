import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { JoinTokenAttestor } from '../../src/attest';
import { ErrorCode } from '../../src/errors';
import { GrpcStatus, grpcStatusOf } from '../../src/internal/grpc-status-map';
import { generateJoinToken, hashJoinToken } from '../../src/internal/join-token-secret';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { mustNotChallenge } from './helpers/channels';
import { rejectsWithCode } from '../support/refusal';

const ID = 'spiffe://lanyard.local/agents/planner';
const T0 = new Date('2030-01-01T00:00:00Z');
const enc = (s: string) => new TextEncoder().encode(s);

describe('join_token attestor (real SQLite store)', () => {
  let dir: string;
  let file: string;
  let store: SqliteStore;
  let attestor: JoinTokenAttestor;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lanyard-attest-jt-'));
    file = path.join(dir, 'lanyard.db');
    store = await SqliteStore.open({ file, clock: () => T0 });
    attestor = new JoinTokenAttestor(store);
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** As the registration API does it: only the hash reaches the store. */
  async function createToken(id: string, ttlSeconds = 600, spiffeId = ID): Promise<string> {
    const token = generateJoinToken();
    await store.createJoinToken({
      id,
      tokenHash: hashJoinToken(token),
      entryId: 'e-1',
      spiffeId,
      expiresAt: new Date(T0.getTime() + ttlSeconds * 1000),
    });
    return token;
  }

  it('success: selector join_token:<token id>, the bound SPIFFE ID, the evidence digest, no re-attestation', async () => {
    const token = await createToken('jt-1');
    const r = await attestor.attest(enc(token), mustNotChallenge, T0);
    assert.deepEqual(r.selectors, [{ type: 'join_token', value: 'jt-1' }]);
    assert.equal(r.boundSpiffeId, ID);
    assert.deepEqual(Buffer.from(r.evidenceSha256), createHash('sha256').update(token).digest());
    assert.equal(r.agentIdHint, 'join_token/jt-1');
    assert.equal(r.canReattest, false);
    // The selectors, hint and ID are published widely: none may carry the secret.
    assert.ok(!JSON.stringify({ ...r, evidenceSha256: undefined }).includes(token));
  });

  it('a trailing newline (token read from a file) is accepted; the digest covers the bytes as sent', async () => {
    const token = await createToken('jt-nl');
    const r = await attestor.attest(enc(`${token}\n`), mustNotChallenge, T0);
    assert.equal(r.boundSpiffeId, ID);
    assert.deepEqual(Buffer.from(r.evidenceSha256), createHash('sha256').update(`${token}\n`).digest());
  });

  it('replay: a second use of the same token is ERR_TOKEN_SPENT (UNAUTHENTICATED)', async () => {
    const token = await createToken('jt-2');
    await attestor.attest(enc(token), mustNotChallenge, T0);
    const e = await rejectsWithCode(
      attestor.attest(enc(token), mustNotChallenge, new Date(T0.getTime() + 1000)),
      ErrorCode.TOKEN_SPENT,
      /jt-2 was already used/,
      [token],
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.UNAUTHENTICATED);
  });

  it('expired: ERR_TOKEN_EXPIRED, and the token is not spent by the failed attempt', async () => {
    const token = await createToken('jt-3', 60);
    await rejectsWithCode(
      attestor.attest(enc(token), mustNotChallenge, new Date(T0.getTime() + 60_000)),
      ErrorCode.TOKEN_EXPIRED,
      /jt-3 expired/,
      [token],
    );
    // Still usable before its expiry, which proves the refusal above wrote nothing.
    const r = await attestor.attest(enc(token), mustNotChallenge, new Date(T0.getTime() + 59_000));
    assert.equal(r.boundSpiffeId, ID);
  });

  it('unknown: a well-formed token that was never issued is ERR_TOKEN_INVALID', async () => {
    const token = generateJoinToken();
    await rejectsWithCode(
      attestor.attest(enc(token), mustNotChallenge, T0),
      ErrorCode.TOKEN_INVALID,
      /not valid/,
      [token],
    );
  });

  it('not a token at all: ERR_TOKEN_INVALID without echoing the text', async () => {
    const guess = 'hunter2-not-a-lanyard-token';
    await rejectsWithCode(
      attestor.attest(enc(guess), mustNotChallenge, T0),
      ErrorCode.TOKEN_INVALID,
      /lanyard_jt_/,
      [guess],
    );
  });

  it('empty, oversized or non-UTF-8 evidence is ERR_MALFORMED_EVIDENCE (INVALID_ARGUMENT)', async () => {
    const e = await rejectsWithCode(
      attestor.attest(new Uint8Array(0), mustNotChallenge, T0),
      ErrorCode.MALFORMED_EVIDENCE,
      /empty/,
    );
    assert.equal(grpcStatusOf(e), GrpcStatus.INVALID_ARGUMENT);
    await rejectsWithCode(
      attestor.attest(enc(`lanyard_jt_${'a'.repeat(300)}`), mustNotChallenge, T0),
      ErrorCode.MALFORMED_EVIDENCE,
      /more than the 256/,
    );
    await rejectsWithCode(
      attestor.attest(Uint8Array.of(0x6c, 0xff, 0xfe), mustNotChallenge, T0),
      ErrorCode.MALFORMED_EVIDENCE,
      /not UTF-8/,
    );
  });

  it('restart: after the store is reopened a spent token is still refused and an unspent one still works', async () => {
    const spent = await createToken('jt-r1');
    const unspent = await createToken('jt-r2');
    await attestor.attest(enc(spent), mustNotChallenge, T0);
    await store.close();

    store = await SqliteStore.open({ file, clock: () => T0 });
    attestor = new JoinTokenAttestor(store);
    await rejectsWithCode(
      attestor.attest(enc(spent), mustNotChallenge, T0),
      ErrorCode.TOKEN_SPENT,
      undefined,
      [spent],
    );
    const r = await attestor.attest(enc(unspent), mustNotChallenge, T0);
    assert.deepEqual(r.selectors, [{ type: 'join_token', value: 'jt-r2' }]);
  });

  it('two concurrent attestations with one token: exactly one succeeds, also from two connections', async () => {
    const token = await createToken('jt-race');
    const second = await SqliteStore.open({ file, clock: () => T0 });
    try {
      const results = await Promise.allSettled([
        attestor.attest(enc(token), mustNotChallenge, T0),
        new JoinTokenAttestor(second).attest(enc(token), mustNotChallenge, T0),
        attestor.attest(enc(token), mustNotChallenge, T0),
      ]);
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) {
        if (r.status === 'rejected') assert.equal((r.reason as { code: string }).code, ErrorCode.TOKEN_SPENT);
      }
    } finally {
      await second.close();
    }
  });

  it('inside a store transaction that fails later (no entry matched, say) the token stays unspent', async () => {
    const token = await createToken('jt-tx');
    await assert.rejects(
      store.transaction(async (tx) => {
        const r = await attestor.attest(enc(token), mustNotChallenge, T0, { store: tx });
        assert.equal(r.boundSpiffeId, ID);
        throw new Error('issuance failed after attestation');
      }),
      /issuance failed/,
    );
    const r = await attestor.attest(enc(token), mustNotChallenge, T0);
    assert.equal(r.boundSpiffeId, ID);
  });

  it('without any store the attestor refuses with ERR_INTERNAL rather than accept the token', async () => {
    await rejectsWithCode(
      new JoinTokenAttestor().attest(enc(generateJoinToken()), mustNotChallenge, T0),
      ErrorCode.INTERNAL,
    );
  });
});
