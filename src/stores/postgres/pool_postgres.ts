/**
 * The PostgreSQL connection pool as seed 002 configures it (DB_POOL_*, DB_QUERY_TIMEOUT,
 * DEBUG_DB_POOL), and PostgreSQL failures as RelaisErrors.
 */
import pg from 'pg';
import { RelaisError } from '../../core/errors.js';
import { SchemaError } from '../migrations.js';
import type { StoreLogger } from '../store.js';

export interface PoolSettings {
  /** postgres:// or postgresql:// URL. */
  readonly url: string;
  /** Schema the store's tables live in (search_path of every connection); absent: the server's default (public). */
  readonly schema?: string;
  readonly poolMax: number;
  readonly poolMin: number;
  /** An idle connection above poolMin is closed after this, ms. */
  readonly idleTimeoutMs: number;
  /** Most time to get a connection (opening one, or waiting for a free one), ms. */
  readonly connectionTimeoutMs: number;
  /** Most time one statement may run, ms: the server cancels it, and the client gives up shortly after. */
  readonly queryTimeoutMs: number;
  /** Logs pool events and, every 30 s, its counts. */
  readonly debugPool: boolean;
}

export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

// The client-side timer backs up the server's statement_timeout for a server that does not
// answer at all; a little later, so that a live server's own cancellation is what callers see.
const CLIENT_TIMEOUT_MARGIN_MS = 500;

export function createPool(settings: PoolSettings, logger: StoreLogger): { pool: pg.Pool; stop: () => void } {
  if (settings.schema !== undefined && !SCHEMA_NAME.test(settings.schema)) {
    throw new SchemaError(`PostgreSQL schema name "${settings.schema}": lowercase letters, digits and "_", at most 63`);
  }
  const pool = new pg.Pool({
    connectionString: settings.url,
    max: settings.poolMax,
    min: settings.poolMin,
    idleTimeoutMillis: settings.idleTimeoutMs,
    connectionTimeoutMillis: settings.connectionTimeoutMs,
    statement_timeout: settings.queryTimeoutMs,
    query_timeout: settings.queryTimeoutMs + CLIENT_TIMEOUT_MARGIN_MS,
    keepAlive: true,
    // Statements of a transaction go out together; see PostgresStore.transaction.
    pipeline: true,
    application_name: 'relais',
    // A startup option rather than a SET statement: the schema is part of the connection, so
    // no SQL text ever carries it.
    ...(settings.schema !== undefined ? { options: `-c search_path=${settings.schema}` } : {}),
  });
  // An idle connection that the server drops (restart, idle timeout) must not crash the process.
  pool.on('error', (err) => logger.warn({ err }, 'PostgreSQL connection lost while idle; the pool opens a new one when needed'));
  let timer: NodeJS.Timeout | undefined;
  if (settings.debugPool) {
    const counts = (): object => ({ totalCount: pool.totalCount, idleCount: pool.idleCount, waitingCount: pool.waitingCount });
    pool.on('connect', () => logger.info(counts(), 'PostgreSQL pool: connection opened'));
    pool.on('remove', () => logger.info(counts(), 'PostgreSQL pool: connection closed'));
    timer = setInterval(() => logger.info(counts(), 'PostgreSQL pool stats'), 30_000);
    timer.unref();
  }
  logger.info({ max: settings.poolMax, min: settings.poolMin, schema: settings.schema ?? '(default)' }, 'PostgreSQL pool ready');
  return { pool, stop: () => clearInterval(timer) };
}

/** SQLSTATE classes and codes that mean "not now": connection trouble, timeouts, contention. */
const TEMPORARY_SQLSTATE = /^(08|53|57P0|57014|40001|40P01|55P03|23505)/;
const NETWORK_CODE = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/;
const TEMPORARY_MESSAGE =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|not queryable|Cannot use a pool after calling end|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|socket hang up/i;

/** A PostgreSQL or network failure as a RelaisError; SchemaError and RelaisErrors pass. */
export function postgresError(err: unknown): Error {
  if (err instanceof RelaisError || err instanceof SchemaError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  const temporary =
    (typeof code === 'string' && (TEMPORARY_SQLSTATE.test(code) || NETWORK_CODE.test(code))) ||
    TEMPORARY_MESSAGE.test(message) ||
    (err instanceof AggregateError && TEMPORARY_MESSAGE.test(String(err.errors)));
  if (temporary) {
    const why = code === '57014' ? 'query timeout' : typeof code === 'string' ? `${code} ${message}` : message;
    return new RelaisError('STORE_UNAVAILABLE', `PostgreSQL store unavailable (${why}), retry later`, { cause: err });
  }
  return new RelaisError('INTERNAL', 'PostgreSQL store failure', { cause: err });
}
