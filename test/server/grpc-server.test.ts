/**
 * The gRPC listeners' own options (src/server/grpc-server.ts): channelz off. Nothing in the server serves the
 * channelz service, so the bookkeeping grpc-js does for it on every call and connection only cost time; a
 * listener must not be in grpc-js's channelz registry at all. A real listener on loopback, a real call.
 */
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { createLogger } from '../../src/internal/logging';
import { LanyardServer } from '../../src/server/grpc-server';
import { checkHealth, healthClient } from '../support/health-client';

interface ChannelzServers {
  server: { listen_socket: { name: string }[]; data: { calls_started: string | number } }[];
  end: boolean;
}

/** Every server in this process's channelz registry, as the channelz service would answer GetServers. */
function channelzServers(): Promise<ChannelzServers['server']> {
  const handlers = grpc.getChannelzHandlers();
  return new Promise((resolve, reject) =>
    handlers.GetServers(
      { request: { start_server_id: '0', max_results: '1000' } } as never,
      ((err: Error | null, res: ChannelzServers) => (err ? reject(err) : resolve(res.server))) as never,
    ),
  );
}

describe('LanyardServer listeners', function () {
  this.timeout(30_000);

  it('keep no channelz data: the listener is not in the channelz registry after serving a call', async () => {
    const server = new LanyardServer({
      listeners: [
        {
          name: 'test',
          address: '127.0.0.1:0',
          credentials: grpc.ServerCredentials.createInsecure(),
          services: [],
        },
      ],
      logger: createLogger({ level: 'silent' }),
      maxMessageBytes: 1024 * 1024,
      shutdownGraceMs: 1000,
    });
    const [bound] = await server.start();
    const client = healthClient(bound!.address, grpc.credentials.createInsecure());
    try {
      // A call through the listener: with channelz on, it counts as started on the listener's entry.
      assert.equal(await checkHealth(client, ''), 'SERVING');
      const listening = (await channelzServers()).filter((s) =>
        s.listen_socket.some((l) => l.name.endsWith(`:${bound!.port}`)),
      );
      assert.deepEqual(listening, [], 'the listener registered itself with channelz');
    } finally {
      client.close();
      await server.close();
    }
  });
});
