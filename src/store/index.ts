/** Persistence for the server: the Store interface, its record types, and the embedded SQLite store. */
export type { Store, StoreChanges, StoreOps } from './store';
export { MAX_PAGE_SIZE } from './store';
export type * from './types';
export { canonicalSelectors, selectorSetKey } from './selectors';
export {
  generateJoinToken,
  hashJoinToken,
  JOIN_TOKEN_PATTERN,
  JOIN_TOKEN_PREFIX,
} from '../internal/join-token-secret';
export { SqliteStore, SQLITE_FILE_NAME } from './sqlite/sqlite-store';
export type { SqliteStoreOptions } from './sqlite/sqlite-store';
export { LATEST_SCHEMA_VERSION } from './sqlite/migrations';
