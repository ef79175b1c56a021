/**
 * Renewals of different agents committed together (group commit) each leave exactly one allow record, written
 * in their own transaction and naming their own caller: a batch's calls must not borrow the audit context of
 * the call that started the batch (which recorded every SVID of the batch under that caller's name, and then
 * each call recorded its SVID again outside the transaction). Workload and session SVIDs, and a refusal, in
 * the same batches. On both stores: SQLite in the data dir, and PostgreSQL as several servers share it.
 */
import assert from 'node:assert/strict';
import { verifyAuditChain } from '../../../src/audit/verify-chain';
import type { GroupCommitStats } from '../../../src/store/store';
import { ParsedCertificate } from '../../../src/x509/certificate';
import { newKey, renewCall, type PublicClients } from '../../support/public-client';
import { register, startSession, useServerWithClients } from '../../support/sessions';
import type { TestServer } from '../../support/test-server';
import { rejectsWithWireCode } from '../../support/grpc-refusal';

const AGENTS = 6;
const RENEWS_EACH = 6;

for (const store of ['sqlite', 'postgres'] as const) {
  describe(`audit records of concurrent renewals (group commit), ${store} store`, function () {
    this.timeout(120_000);
    const { server, connect: clientsOf } = useServerWithClients({ store });
    let s: TestServer;
    before(() => {
      s = server();
    });

    it('one record per SVID, in the name of the agent that renewed it', async () => {
      const callers: { spiffeId: string; clients: PublicClients }[] = [];
      for (let i = 0; i < AGENTS; i++) {
        const agent = await register(s, `concurrent/agent-${i}`);
        // Half renew a session SVID: its serial row and the record share the call's transaction too.
        const as = i % 2 === 0 ? agent : (await startSession(s, agent)).agent;
        callers.push({ spiffeId: agent.spiffeId, clients: clientsOf(as) });
      }
      const stats = (): GroupCommitStats => {
        assert.ok(s.running.store.groupCommitStats !== undefined, 'the store groups commits');
        return s.running.store.groupCommitStats();
      };
      const before = stats();

      // Everything in flight at once, so that batches hold calls of several agents; one refused call among them.
      const issued = new Map<string, string>();
      const refusal = rejectsWithWireCode(
        renewCall(callers[0]!.clients, Buffer.from('not a CSR')),
        'ERR_MALFORMED_CSR',
      );
      await Promise.all(
        callers.flatMap(({ spiffeId, clients }) =>
          Array.from({ length: RENEWS_EACH }, async () => {
            const r = await renewCall(clients, newKey().csr);
            const serial = ParsedCertificate.fromDer(new Uint8Array(r.svid!.certChain[0]!)).serialHex;
            issued.set(serial, spiffeId);
          }),
        ),
      );
      await refusal;
      const after = stats();
      assert.ok(
        after.batches - before.batches < after.calls - before.calls,
        'some calls shared a commit (else this test proves nothing)',
      );

      const chain = s.running.audit.chain;
      const { records } = await s.running.store.audit.readRecords(chain, 0, 100_000);
      const renewals = records.filter((r) => r.event === 'svid.renew' && r.decision === 'allow');
      assert.equal(renewals.length, AGENTS * RENEWS_EACH, 'exactly one allow record per renewal');
      for (const r of renewals) {
        const by = issued.get(r.serial ?? '');
        assert.ok(by !== undefined, `a record for serial ${r.serial} that no caller received`);
        assert.equal(
          r.actor,
          by,
          `the record of ${r.serial} names ${r.actor}, not the agent that renewed it`,
        );
        assert.equal(r.subject, by);
      }
      const v = verifyAuditChain(chain, records, [], undefined, { allowUnsignedTail: true });
      assert.equal(v.ok, true, v.break?.message);
    });
  });
}
