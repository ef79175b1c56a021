/**
 * Opens the store the configuration names: SQLite in the data dir by default, or the shared PostgreSQL store
 * (store.postgres), whose password comes from store.postgres.password_file or LANYARD_POSTGRES_PASSWORD and
 * never from the URL, a log line or an error message.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError } from '../errors';
import { PgStore } from '../store/postgres/pg-store';
import { SQLITE_FILE_NAME, SqliteStore } from '../store/sqlite/sqlite-store';
import type { Store } from '../store/store';
import type { ServerConfig } from './config';

export const POSTGRES_PASSWORD_ENV = 'LANYARD_POSTGRES_PASSWORD';

/** In the data dir: which server this is among those sharing a PostgreSQL database (its CAs' keys live here). */
export const SERVER_ID_FILE = 'server-id';

/** The server id kept in the data dir, made (a random UUID) at the first start. */
export function serverIdOf(dataDir: string): string {
  const file = path.join(dataDir, SERVER_ID_FILE);
  try {
    fs.writeFileSync(file, `${randomUUID()}\n`, { mode: 0o600, flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const id = fs.readFileSync(file, 'utf8').trim();
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
    throw new ConfigError(`${file}: not a server id (letters, digits, . _ -; at most 128)`);
  }
  return id;
}

/**
 * The password file's first line, refused when group or others may read it (like a key file), else the env var.
 * @throws ConfigError naming the file and what is wrong, never its contents
 */
export function postgresPassword(
  passwordFile: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (passwordFile === undefined) {
    const fromEnv = env[POSTGRES_PASSWORD_ENV];
    return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
  }
  let stat: fs.Stats;
  let text: string;
  try {
    stat = fs.statSync(passwordFile);
    text = fs.readFileSync(passwordFile, 'utf8');
  } catch (e) {
    throw new ConfigError(
      `store.postgres.password_file: cannot read ${passwordFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if ((stat.mode & 0o077) !== 0) {
    throw new ConfigError(
      `store.postgres.password_file: ${passwordFile} is accessible by group or others (mode ${(stat.mode & 0o777).toString(8)}): chmod 600 it`,
    );
  }
  const password = text.split(/\r?\n/, 1)[0] ?? '';
  if (password === '') throw new ConfigError(`store.postgres.password_file: ${passwordFile} is empty`);
  return password;
}

export function openConfiguredStore(
  config: ServerConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Store> {
  if (config.postgres === undefined) {
    return SqliteStore.open({ file: path.join(config.dataDir, SQLITE_FILE_NAME) });
  }
  let password: string | undefined;
  try {
    password = postgresPassword(config.postgres.passwordFile, env);
  } catch (e) {
    return Promise.reject(e);
  }
  return PgStore.open({
    url: config.postgres.url,
    poolSize: config.postgres.poolSize,
    ...(password !== undefined && { password }),
    serverId: serverIdOf(config.dataDir),
    applicationName: `lanyard-server ${config.listenAddress.host}:${config.listenAddress.port}`,
  });
}
