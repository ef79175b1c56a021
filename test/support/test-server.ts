/** A real server for tests: temp data dir, real SQLite, admin socket, logs captured in memory. */
import { Writable } from 'node:stream';
import { tempDir } from './tmp';
import { AdminClient } from '../../src/server/admin-client';
import { loadConfig, type ServerConfig } from '../../src/server/config';
import { createLogger } from '../../src/internal/logging';
import { type RunningServer, type StartOptions, startServer } from '../../src/server/run';

export interface TestServer {
  dir: string;
  config: ServerConfig;
  running: RunningServer;
  client: AdminClient;
  /** Every log line so far, raw JSON text. */
  logs: string[];
  /** Closes client and server; keeps the data dir (restart tests reuse it). */
  stop(): Promise<void>;
}

/** A server data dir (removed when the run ends, see ./tmp). */
export function tempDataDir(): string {
  return tempDir('server');
}

export async function startTestServer(
  options: { dir?: string; config?: Partial<ServerConfig>; start?: StartOptions } = {},
): Promise<TestServer> {
  const dir = options.dir ?? tempDataDir();
  const config: ServerConfig = {
    ...loadConfig({ dataDir: dir, env: {} }),
    // A free port for the public TLS listener, so tests never collide with each other or a dev server.
    listenAddress: { host: '127.0.0.1', port: 0 },
    ...options.config,
  };
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination });
  const running = await startServer(config, { logger, ...options.start });
  const client = new AdminClient(config.adminSocketPath);
  return {
    dir,
    config,
    running,
    client,
    logs,
    async stop() {
      client.close();
      await running.close();
    },
  };
}
