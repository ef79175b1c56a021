/**
 * What the server keeps per connection (the client certificate it authorized) and per chain (the verifier's
 * memo) never outlives a revocation: on the very connection that renewed a moment ago, the next call of a
 * revoked SVID, an ended session or a deleted entry is refused.
 */
import { newKey, renewCall } from '../../support/public-client';
import { endSession, register, serialOf, startSession, useServerWithClients } from '../../support/sessions';
import type { TestServer } from '../../support/test-server';
import { rejectsWithWireCode } from '../../support/grpc-refusal';

describe('caller checks on a connection that was served before', function () {
  this.timeout(120_000);
  const { server, connect } = useServerWithClients();
  let s: TestServer;
  before(() => {
    s = server();
  });

  it('a revoked workload SVID is refused on its next call', async () => {
    const agent = await register(s, 'served/revoked');
    const c = connect(agent);
    await renewCall(c, newKey().csr);
    await renewCall(c, newKey().csr);
    await s.client.revokeSvid({ serialHex: serialOf(agent), reason: 'compromised' });
    await rejectsWithWireCode(renewCall(c, newKey().csr), 'ERR_REVOKED');
  });

  it('an ended session is refused on its next call', async () => {
    const agent = await register(s, 'served/session');
    const { agent: inSession, res } = await startSession(s, agent);
    const c = connect(inSession);
    await renewCall(c, newKey().csr);
    await endSession(s, agent, res.sessionId, 'task done');
    await rejectsWithWireCode(renewCall(c, newKey().csr), 'ERR_SESSION_ENDED');
  });

  it("a deleted entry's SVID is refused on its next call", async () => {
    const agent = await register(s, 'served/deleted');
    const c = connect(agent);
    await renewCall(c, newKey().csr);
    const entry = (await s.client.listEntries({})).entries.find((e) => e.spiffeId === agent.spiffeId)!;
    await s.client.deleteEntry({ id: entry.id });
    await rejectsWithWireCode(renewCall(c, newKey().csr), 'ERR_NO_MATCHING_ENTRY');
  });
});
