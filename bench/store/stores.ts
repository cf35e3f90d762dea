/**
 * The stores a store bench runs against: SQLite in a temporary folder, PostgreSQL on the
 * machine's server (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) in a fresh
 * schema dropped afterwards.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresStore } from '../../src/stores/postgres/store_postgres.js';
import { SqliteStore } from '../../src/stores/sqlite/store_sqlite.js';
import type { Store } from '../../src/stores/store.js';
import { createSchema, dropSchemas, newSchemaName, postgresUnreachable } from '../../test/helpers/postgres.js';

export type StoreKind = 'sqlite' | 'postgres';

export const POSTGRES_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface BenchStore {
  readonly store: Store;
  /** Where it lives: the SQLite file, or the PostgreSQL schema. */
  readonly where: string;
  dispose(): Promise<void>;
}

export async function openBenchStore(kind: StoreKind, maxInFlight?: number): Promise<BenchStore> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'relais-bench-store-'));
    const path = join(dir, 'relais.sqlite');
    const store = new SqliteStore({ path });
    await store.migrate();
    return {
      store,
      where: path,
      dispose: async () => {
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const unreachable = await postgresUnreachable(POSTGRES_URL);
  if (unreachable !== undefined) throw new Error(`PostgreSQL is not reachable at ${POSTGRES_URL}: ${unreachable}`);
  const schema = newSchemaName();
  await createSchema(POSTGRES_URL, schema);
  const store = new PostgresStore({ url: POSTGRES_URL, schema, poolMin: 2, poolMax: 10, queryTimeoutMs: 10_000, ...(maxInFlight ? { maxInFlight } : {}) });
  await store.migrate();
  return {
    store,
    where: schema,
    dispose: async () => {
      await store.close();
      await dropSchemas(POSTGRES_URL, [schema]);
    },
  };
}
