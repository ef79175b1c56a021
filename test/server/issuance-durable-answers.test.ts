/**
 * The issuance calls answered in a durability scope (server/durable-answers.ts SCOPED_METHODS: Renew,
 * StartSession, the node agent's BatchNewX509Svid): their store reads (caller, quota, entries) do not each wait
 * for the fsync of the commits before them, and the answer is sent only after an fsync that started after the
 * call's own commit was written. A real server on loopback with real SQLite; the store's WAL fsync is the real
 * one, held by a gate (test/support/fsync-gate.ts) to see what is answered meanwhile.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { channelCredentialsPresenting, LANYARD_CHANNEL_OPTIONS } from '../../src/client/server-credentials';
import { NodeServiceClient } from '../../src/gen/lanyard/v1/node';
import { StartSessionRequest } from '../../src/gen/lanyard/v1/session';
import { SQLITE_FILE_NAME, SqliteStore } from '../../src/store/sqlite/sqlite-store';
import { FsyncGate, settled } from '../support/fsync-gate';
import { marshalIdentity, newKey, renewCall } from '../support/public-client';
import { id, register, sessionClient, unary, useServerWithClients, type Agent } from '../support/sessions';
import { newEntry } from '../store/conformance';

describe('issuance answered once its commit is durable, its reads waiting for nothing before', function () {
  this.timeout(120_000);
  const gate = new FsyncGate({ holding: false });
  const { server, connect } = useServerWithClients({
    openStore: (config) =>
      SqliteStore.open({ file: path.join(config.dataDir, SQLITE_FILE_NAME), fsync: gate.hook }),
  });
  let agent: Agent;
  let node: Agent;
  let nodeEntryId = '';
  const closers: (() => void)[] = [];
  before(async () => {
    agent = await register(server(), 'durable/renew', { allowedScopes: ['read'] });
    node = await register(server(), 'durable/node');
    const { entry } = await server().client.createEntry({
      entry: {
        spiffeId: id('durable/node/workload'),
        parentId: node.spiffeId,
        selectors: [{ type: 'unix', value: 'uid:1000' }],
      },
    });
    nodeEntryId = entry!.id;
  });
  afterEach(() => gate.stopHolding());
  after(() => {
    for (const c of closers) c();
  });

  /** Audit records of `event` another connection sees: committed, durable or not. */
  const committed = (event: string): number => {
    const db = new Database(path.join(server().dir, SQLITE_FILE_NAME), { readonly: true });
    try {
      return db.prepare(`SELECT count(*) FROM audit_records WHERE event = ?`).pluck().get(event) as number;
    } finally {
      db.close();
    }
  };

  const cases: { method: string; event: string; call: () => Promise<unknown> }[] = [
    {
      method: 'Renew',
      event: 'svid.renew',
      call: () => renewCall(connect(agent), newKey().csr),
    },
    {
      method: 'StartSession',
      event: 'session.start',
      call: () => {
        const c = sessionClient(server(), agent);
        closers.push(() => c.close());
        return unary(
          c.startSession.bind(c),
          StartSessionRequest.fromPartial({ csr: newKey().csr, scopes: ['read'] }),
        );
      },
    },
    {
      method: 'BatchNewX509Svid',
      event: 'svid.issue',
      call: () => {
        const c = new NodeServiceClient(
          server().running.publicAddress,
          channelCredentialsPresenting(server().running.ca.bundle(), marshalIdentity(node)),
          LANYARD_CHANNEL_OPTIONS,
        );
        closers.push(() => c.close());
        return new Promise((resolve, reject) =>
          c.batchNewX509Svid(
            { params: [{ entryId: nodeEntryId, csr: newKey().csr }] },
            new grpc.Metadata(),
            { deadline: Date.now() + 60_000 },
            (e, r) => (e ? reject(e) : resolve(r)),
          ),
        );
      },
    },
  ];

  for (const { method, event, call } of cases) {
    it(`${method}: commits while an earlier commit waits for its fsync, and answers only after an fsync of its own`, async () => {
      const before = committed(event);
      gate.hold();
      const started = gate.started.length;
      // An unrelated commit whose fsync is held: a read that waited for it would hold the call before its commit.
      const earlier = server().running.store.createEntry(
        newEntry({ spiffeId: `spiffe://lanyard.local/durable/x-${method}` }),
      );
      await gate.waitForStarts(started + 1);

      const answered = call();
      for (let i = 0; i < 2_000 && committed(event) === before; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.equal(
        committed(event),
        before + 1,
        `the ${method} did not commit while an earlier commit's fsync was held: its reads waited for it`,
      );
      assert.equal(await settled(answered), false, 'answered before any fsync covered its commit');

      // The held fsync started before the call's commit was written: its completion vouches only for `earlier`.
      gate.release();
      await earlier;
      await gate.waitForStarts(started + 2);
      assert.equal(await settled(answered), false, 'answered on an fsync that started before its commit');
      gate.release();
      await answered;
    });
  }
});
