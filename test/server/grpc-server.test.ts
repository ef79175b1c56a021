/**
 * The gRPC listeners' own options (src/server/grpc-server.ts): channelz off. Nothing in the server serves the
 * channelz service, so the bookkeeping grpc-js does for it on every call and connection only cost time; a
 * listener must not be in grpc-js's channelz registry at all. A real listener on loopback, a real call.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { channelzServers, startBareListener } from '../support/channelz';
import { checkHealth, healthClient } from '../support/health-client';

describe('LanyardServer listeners', function () {
  this.timeout(30_000);

  it('keep no channelz data: the listener is not in the channelz registry after serving a call', async () => {
    const { server, address, port } = await startBareListener();
    const client = healthClient(address, grpc.credentials.createInsecure());
    try {
      // A call through the listener: with channelz on, it counts as started on the listener's entry.
      assert.equal(await checkHealth(client, ''), 'SERVING');
      const listening = (await channelzServers()).filter((s) =>
        s.listen_socket.some((l) => l.name.endsWith(`:${port}`)),
      );
      assert.deepEqual(listening, [], 'the listener registered itself with channelz');
    } finally {
      client.close();
      await server.close();
    }
  });
});
