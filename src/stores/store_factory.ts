/**
 * Picks the durable store from the configuration: PostgreSQL with DATABASE_URL, otherwise the
 * embedded SQLite file under RELAIS_DATA_DIR. Each store module (and its driver) loads only
 * when used. The caller runs `migrate()` before anything else.
 */
import { join } from 'node:path';
import type { RelaisConfig } from '../config/schema.js';
import type { Store, StoreLogger } from './store.js';

/** SQLite's lock wait blocks the event loop: never longer than this, whatever query_timeout says. */
const SQLITE_MAX_BUSY_MS = 5000;

export function sqliteFile(config: Readonly<RelaisConfig>): string {
  return join(config.data_dir, 'relais.sqlite');
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/** One line for the start-up log: which store, and where. */
export function storeDescription(config: Readonly<RelaisConfig>): string {
  const db = config.database;
  return db.url
    ? `durable store: PostgreSQL at ${redact(db.url)}${db.schema ? ` (schema "${db.schema}")` : ''}, pool ${db.pool_min}-${db.pool_max}`
    : `durable store: SQLite file ${sqliteFile(config)} (set DATABASE_URL to use PostgreSQL)`;
}

export async function createStore(config: Readonly<RelaisConfig>, logger: StoreLogger): Promise<Store> {
  const db = config.database;
  if (db.url) {
    const { PostgresStore } = await import('./postgres/store_postgres.js');
    return new PostgresStore({
      url: db.url,
      ...(db.schema ? { schema: db.schema } : {}),
      poolMax: db.pool_max,
      poolMin: db.pool_min,
      idleTimeoutMs: db.pool_idle_timeout,
      connectionTimeoutMs: db.pool_connection_timeout,
      queryTimeoutMs: db.query_timeout,
      debugPool: db.debug_pool,
      logger,
    });
  }
  const { SqliteStore } = await import('./sqlite/store_sqlite.js');
  return new SqliteStore({ path: sqliteFile(config), busyTimeoutMs: Math.min(db.query_timeout, SQLITE_MAX_BUSY_MS) });
}
