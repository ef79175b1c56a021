/**
 * Starting and stopping a whole server from a ServerConfig: data dir, store, listeners. Used by
 * `lanyard server run` and by tests that need a real server.
 */
import * as path from 'node:path';
import { TrustDomain } from '../spiffe';
import { SQLITE_FILE_NAME, SqliteStore } from '../store/sqlite/sqlite-store';
import type { Store } from '../store/store';
import { prepareDataDir } from './admin-socket';
import type { ServerConfig } from './config';
import { type BoundListener, LanyardServer } from './grpc-server';
import { createLogger, type Logger } from './logging';
import { buildListeners } from './services';

export interface StartOptions {
  logger?: Logger;
  clock?: () => Date;
  /** Opens the store; the default is SQLite in the data dir. Tests wrap it to observe or slow calls. */
  openStore?: (config: ServerConfig) => Promise<Store>;
}

export interface RunningServer {
  config: ServerConfig;
  server: LanyardServer;
  store: Store;
  listeners: BoundListener[];
  logger: Logger;
  /** Graceful close, then the store. */
  close(): Promise<void>;
}

export function openDefaultStore(config: ServerConfig): Promise<Store> {
  return SqliteStore.open({ file: path.join(config.dataDir, SQLITE_FILE_NAME) });
}

export async function startServer(config: ServerConfig, options: StartOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const clock = options.clock ?? (() => new Date());
  const trustDomain = TrustDomain.parse(config.trustDomain);

  if (prepareDataDir(config.dataDir)) {
    logger.warn({ dataDir: config.dataDir }, 'data dir was readable by others: tightened to 0700');
  }
  const store = await (options.openStore ?? openDefaultStore)(config);
  if (store instanceof SqliteStore) logger.info({ store: store.diagnostics() }, 'store open');

  const server = new LanyardServer({
    listeners: buildListeners({ config, trustDomain, store, logger, clock }),
    logger,
    maxMessageBytes: config.maxMessageBytes,
    shutdownGraceMs: config.shutdownGraceSeconds * 1000,
    onClosed: () => store.close(),
  });
  // On a failed start the server closes what it bound and, through onClosed, the store.
  const listeners = await server.start();
  logger.info({ trustDomain: config.trustDomain, dataDir: config.dataDir }, 'lanyard server ready');
  return { config, server, store, listeners, logger, close: () => server.close() };
}

/**
 * Closes the server on the first SIGTERM or SIGINT; a second signal during the drain exits at once.
 * Resolves with the exit code once closed.
 */
export function closeOnSignals(
  running: RunningServer,
  signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
): Promise<number> {
  return new Promise((resolve) => {
    let closing = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (closing) {
        running.logger.warn({ signal }, 'second signal: exiting without waiting for in-flight calls');
        process.exit(130);
      }
      closing = true;
      running.logger.info({ signal }, 'signal received: closing');
      running.close().then(
        () => {
          for (const s of signals) process.off(s, onSignal);
          resolve(0);
        },
        (e: unknown) => {
          running.logger.error({ err: e }, 'close failed');
          resolve(1);
        },
      );
    };
    for (const s of signals) process.on(s, onSignal);
  });
}
