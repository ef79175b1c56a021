/**
 * A join token yields exactly the entry it was created for, never another entry with the same SPIFFE ID. The
 * reproduction: two entries with one SPIFFE ID, the older one admin; a token "for the SPIFFE ID" gave the
 * attesting workload the admin entry. Also: the token's entry deleted, re-created under its id, renamed or
 * moved under a node agent before the attestation (refused, and the token spent: fail closed), and tokens
 * stored before tokens named their entry (bound by the migration when unambiguous, refused otherwise).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import * as grpc from '@grpc/grpc-js';
import { ERROR_CODE_METADATA_KEY } from '../../../src/internal/grpc-call';
import { ListEntriesRequest } from '../../../src/gen/lanyard/v1/registration';
import { generateJoinToken, hashJoinToken } from '../../../src/internal/join-token-secret';
import { MIGRATIONS } from '../../../src/store/sqlite/migrations';
import { SQLITE_FILE_NAME } from '../../../src/store/sqlite/sqlite-store';
import { verifyX509Svid } from '../../../src/verify';
import { X509Bundle } from '../../../src/bundle/x509-bundle';
import { TrustDomain } from '../../../src/spiffe';
import { startTestServer, tempDataDir, type TestServer } from '../../support/test-server';
import { attest, connectPublic, newKey, type PublicClients } from '../../support/public-client';
import { id, TD } from '../../support/sessions';
import { rejectsWithStatus } from '../../support/grpc-refusal';

/** The gRPC status and Lanyard code of a failed call. */
async function refusal(p: Promise<unknown>): Promise<{ code: number; lanyard: unknown; details: string }> {
  const e = (await p.then(
    () => assert.fail('expected a refusal'),
    (err: unknown) => err,
  )) as grpc.ServiceError;
  return { code: e.code, lanyard: e.metadata?.get(ERROR_CODE_METADATA_KEY)[0], details: e.details };
}

describe('join tokens bound to one entry', function () {
  this.timeout(60_000);
  let s: TestServer;
  let pub: PublicClients;
  before(async () => {
    s = await startTestServer();
    pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
  });
  after(async () => {
    pub.close();
    await s.stop();
  });

  const attestWith = (token: string, key = newKey()) =>
    attest(pub.attestation, { attestorType: 'join_token', evidence: Buffer.from(token), csr: key.csr });
  const entryOf = async (spiffeId: string, selector: string, admin = false): Promise<string> =>
    (
      await s.client.createEntry({
        entry: { spiffeId, selectors: [{ type: 'unix', value: selector }], admin, allowedScopes: ['x:y'] },
      })
    ).entry!.id;

  it('two entries with one SPIFFE ID, the older admin: a token for the other never yields the admin one', async () => {
    const shared = id('agents/twin');
    const adminEntry = await entryOf(shared, 'uid:1', true);
    const plainEntry = await entryOf(shared, 'uid:2');

    // By SPIFFE ID alone the token would have to choose: refused, naming both entries.
    const err = await rejectsWithStatus(
      s.client.createJoinToken({ spiffeId: shared }),
      grpc.status.FAILED_PRECONDITION,
      adminEntry,
      plainEntry,
      'entry_id',
    );
    assert.equal(err.lanyardCode, 'ERR_ENTRY_AMBIGUOUS');

    const created = await s.client.createJoinToken({ entryId: plainEntry });
    assert.equal(created.entryId, plainEntry);
    assert.equal(created.spiffeId, shared);
    const key = newKey();
    const r = await attestWith(created.token, key);
    assert.equal(r.svid?.entryId, plainEntry);
    const bundle = X509Bundle.fromPem(TrustDomain.parse(TD), s.running.ca.bundle().toPem());
    const svid = verifyX509Svid(
      r.svid!.certChain.map((b) => new Uint8Array(b)),
      bundle,
    );
    assert.equal(svid.context?.agentId, plainEntry, 'the SVID names the bound entry');

    // And it is not an admin: the admin API refuses it.
    const who = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD, {
      key: key.key,
      chain: r.svid!.certChain.map((b) => new Uint8Array(b)),
    });
    try {
      const denied = await refusal(
        new Promise((resolve, reject) =>
          who.registration.listEntries(ListEntriesRequest.fromPartial({}), (e, res) =>
            e ? reject(e) : resolve(res),
          ),
        ),
      );
      assert.equal(denied.code, grpc.status.PERMISSION_DENIED);
      assert.equal(denied.lanyard, 'ERR_UNAUTHORIZED');
    } finally {
      who.close();
    }

    // The admin entry is reachable only by a token created for it, by id.
    const forAdmin = await s.client.createJoinToken({ entryId: adminEntry });
    assert.equal((await attestWith(forAdmin.token)).svid?.entryId, adminEntry);
  });

  it('entry_id and spiffe_id together must agree; an entry under a node agent or unknown gets no token', async () => {
    const e = await entryOf(id('agents/solo'), 'uid:3');
    await rejectsWithStatus(
      s.client.createJoinToken({ entryId: e, spiffeId: id('agents/other') }),
      grpc.status.INVALID_ARGUMENT,
      'spiffe_id',
    );
    const parented = (
      await s.client.createEntry({
        entry: {
          spiffeId: id('agents/under'),
          parentId: id('node/n'),
          selectors: [{ type: 'unix', value: 'uid:4' }],
        },
      })
    ).entry!.id;
    await rejectsWithStatus(
      s.client.createJoinToken({ entryId: parented }),
      grpc.status.INVALID_ARGUMENT,
      'node agent',
    );
    await rejectsWithStatus(
      s.client.createJoinToken({ spiffeId: id('agents/under') }),
      grpc.status.NOT_FOUND,
      parented,
    );
    await rejectsWithStatus(
      s.client.createJoinToken({ entryId: 'no-such-entry' }),
      grpc.status.NOT_FOUND,
      'no-such-entry',
    );
    await rejectsWithStatus(s.client.createJoinToken({}), grpc.status.INVALID_ARGUMENT, 'entry_id');
  });

  /** A token for a fresh entry, then `change` before it is used: refused with `why`, and spent. */
  const refusedAndSpent = async (name: string, change: (entryId: string) => Promise<void>, why: RegExp) => {
    const e = await entryOf(id(`agents/${name}`), `uid:${name}`);
    const { token } = await s.client.createJoinToken({ entryId: e });
    await change(e);
    const first = await refusal(attestWith(token));
    assert.equal(first.code, grpc.status.PERMISSION_DENIED, first.details);
    assert.equal(first.lanyard, 'ERR_NO_MATCHING_ENTRY');
    assert.match(first.details, why);
    // Fail closed: the token is spent, so it can never yield an entry restored or re-created later.
    const again = await refusal(attestWith(token));
    assert.equal(again.lanyard, 'ERR_TOKEN_SPENT');
  };

  it("the token's entry deleted before the attestation: refused, and the token spent", () =>
    refusedAndSpent('gone', (e) => s.client.deleteEntry({ id: e }).then(() => undefined), /was deleted/));

  it('an entry re-created under the same id (made admin) after the token: refused, never the new entry', () =>
    refusedAndSpent(
      'reborn',
      async (e) => {
        await s.client.deleteEntry({ id: e });
        await s.client.createEntry({
          entry: {
            id: e,
            spiffeId: id('agents/reborn'),
            selectors: [{ type: 'unix', value: 'uid:r' }],
            admin: true,
          },
        });
      },
      /created after the join token/,
    ));

  it("the token's entry now issues another SPIFFE ID: refused", () =>
    refusedAndSpent(
      'renamed',
      (e) =>
        s.client
          .updateEntry({
            entry: { id: e, revision: 1, spiffeId: id('agents/renamed-2') },
            updateMask: ['spiffe_id'],
          })
          .then(() => undefined),
      /now issues/,
    ));

  it("the token's entry moved under a node agent: refused", () =>
    refusedAndSpent(
      'moved',
      (e) =>
        s.client
          .updateEntry({ entry: { id: e, revision: 1, parentId: id('node/n') }, updateMask: ['parent_id'] })
          .then(() => undefined),
      /node agent/,
    ));

  it('a refusal unrelated to the binding (malformed CSR) still leaves the token unspent', async () => {
    const e = await entryOf(id('agents/retry'), 'uid:retry');
    const { token } = await s.client.createJoinToken({ entryId: e });
    const bad = await refusal(
      attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(token),
        csr: Buffer.from('nope'),
      }),
    );
    assert.equal(bad.code, grpc.status.INVALID_ARGUMENT);
    assert.equal((await attestWith(token)).svid?.entryId, e);
  });
});

describe('join tokens stored before they named their entry (migration 6)', function () {
  this.timeout(60_000);

  it('are bound where one entry had the SPIFFE ID, and refused where several did', async () => {
    const dir = tempDataDir();
    const db = new Database(path.join(dir, SQLITE_FILE_NAME));
    db.exec(`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL,
             applied_at INTEGER NOT NULL)`);
    for (const m of MIGRATIONS.filter((x) => x.version <= 4)) {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.description, 0);
    }
    const now = Date.now();
    const entry = db.prepare(
      `INSERT INTO entries (id, spiffe_id, parent_id, selectors_key, x509_svid_ttl_seconds, allowed_scopes,
         max_delegation_depth, allowed_delegates, admin, dns_names, can_assert_principal, created_at, updated_at, revision)
       VALUES (?, ?, '', ?, 0, '[]', 0, '[]', ?, '[]', 0, ?, ?, 1)`,
    );
    const selector = db.prepare('INSERT INTO entry_selectors (entry_id, type, value) VALUES (?, ?, ?)');
    const add = (entryId: string, spiffeId: string, uid: string, admin: number): void => {
      entry.run(
        entryId,
        spiffeId,
        JSON.stringify([{ type: 'unix', value: uid }]),
        admin,
        now - 60_000,
        now - 60_000,
      );
      selector.run(entryId, 'unix', uid);
    };
    add('e-single', id('agents/single'), 'uid:1', 0);
    add('e-twin-admin', id('agents/twin'), 'uid:2', 1);
    add('e-twin', id('agents/twin'), 'uid:3', 0);
    const token = db.prepare(
      'INSERT INTO join_tokens (id, token_hash, spiffe_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)',
    );
    const single = generateJoinToken();
    const twin = generateJoinToken();
    token.run('jt-single', hashJoinToken(single), id('agents/single'), now - 30_000, now + 600_000);
    token.run('jt-twin', hashJoinToken(twin), id('agents/twin'), now - 30_000, now + 600_000);
    db.close();

    const s = await startTestServer({ dir });
    const pub = connectPublic(s.running.publicAddress, s.running.ca.bundle().toPem(), TD);
    try {
      const ok = await attest(pub.attestation, {
        attestorType: 'join_token',
        evidence: Buffer.from(single),
        csr: newKey().csr,
      });
      assert.equal(ok.svid?.entryId, 'e-single');
      const refused = await refusal(
        attest(pub.attestation, {
          attestorType: 'join_token',
          evidence: Buffer.from(twin),
          csr: newKey().csr,
        }),
      );
      assert.equal(refused.code, grpc.status.PERMISSION_DENIED);
      assert.match(refused.details, /names no entry/);
    } finally {
      pub.close();
      await s.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
