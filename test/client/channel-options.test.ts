/**
 * The client library's channel options (LANYARD_CHANNEL_OPTIONS in src/client/server-credentials.ts): channelz off,
 * as on the server's listeners. Nothing in an agent or a relying party serves the channelz service, so the counters
 * grpc-js keeps for it on every call of every channel are kept for no reader. A real listener on loopback, a call.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { LANYARD_CHANNEL_OPTIONS } from '../../src/client/server-credentials';
import type { LanyardServer } from '../../src/server/grpc-server';
import { channelzChannels, startBareListener } from '../support/channelz';
import { checkHealth, healthClient } from '../support/health-client';

describe('LANYARD_CHANNEL_OPTIONS', function () {
  this.timeout(30_000);
  let server: LanyardServer;
  let address: string;

  before(async () => {
    ({ server, address } = await startBareListener());
  });
  after(() => server.close());

  /** The registry's channels whose target is this test's listener, after one call over a client made with `options`. */
  async function registeredAfterACall(options: grpc.ChannelOptions): Promise<number> {
    const client = healthClient(address, grpc.credentials.createInsecure(), options);
    try {
      assert.equal(await checkHealth(client, ''), 'SERVING');
      return (await channelzChannels()).filter((c) => c.data.target.endsWith(address)).length;
    } finally {
      client.close();
    }
  }

  it('keep a channel out of the channelz registry', async () => {
    assert.equal(
      await registeredAfterACall(LANYARD_CHANNEL_OPTIONS),
      0,
      'the channel registered with channelz',
    );
  });

  it('is what keeps it out: the same client with grpc-js defaults is in the registry', async () => {
    assert.equal(await registeredAfterACall({}), 1);
  });
});
