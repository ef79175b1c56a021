/**
 * The Workload API endpoint's gRPC server (src/agent/workload-api/endpoint.ts): channelz off, as on the
 * server's listeners (test/server/grpc-server.test.ts). Nothing in the agent serves the channelz service, so
 * the bookkeeping grpc-js does for it on every call and connection only costs time; the endpoint's server
 * must not be in grpc-js's channelz registry at all. A real endpoint on a real Unix socket.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { WorkloadEndpoint } from '../../src/agent/workload-api/endpoint';
import { createLogger } from '../../src/internal/logging';
import { tempDir } from '../support/agent';

interface ChannelzServers {
  server: { ref: { server_id: string | number } }[];
}

/** The ids of every server in this process's channelz registry, as the channelz service would answer. */
function channelzServerIds(): Promise<string[]> {
  const handlers = grpc.getChannelzHandlers();
  return new Promise((resolve, reject) =>
    handlers.GetServers(
      { request: { start_server_id: '0', max_results: '1000' } } as never,
      ((err: Error | null, res: ChannelzServers) =>
        err ? reject(err) : resolve(res.server.map((s) => String(s.ref.server_id)))) as never,
    ),
  );
}

describe('node agent: the Workload API endpoint', function () {
  this.timeout(30_000);

  it('keeps no channelz data: its gRPC server is not in the channelz registry', async () => {
    const before = new Set(await channelzServerIds());
    const endpoint = await WorkloadEndpoint.listen({
      socketPath: path.join(tempDir(), 'run', 'agent.sock'),
      services: () => [],
      logger: createLogger({ level: 'silent', destination: new Writable({ write: (_c, _e, cb) => cb() }) }),
    });
    try {
      const added = (await channelzServerIds()).filter((id) => !before.has(id));
      assert.deepEqual(added, [], "the endpoint's gRPC server registered itself with channelz");
    } finally {
      await endpoint.close();
    }
  });
});
