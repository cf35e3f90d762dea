/**
 * Relais instances sharing the machine's PostgreSQL (a fresh schema per call, dropped after
 * the suite) and Redis (a prefix per suite, deleted after it), for the tests of persistent
 * channels and of the chat across instances.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach } from 'vitest';
import { busEnv, deletePrefix, sharedBusAvailable, SHARED_URL } from './buses.js';
import { Resources } from './cluster.js';
import { createSchema, dropSchemas, newSchemaName, postgresUnreachable, SHARED_POSTGRES_URL } from './postgres.js';
import { startRelais, type RelaisProcess } from './relais.js';

/** What is missing for these suites (the shared PostgreSQL or Redis), or undefined. */
export async function sharedStoreMissing(): Promise<string | undefined> {
  const postgres = await postgresUnreachable(SHARED_POSTGRES_URL);
  if (postgres !== undefined) return `no PostgreSQL at ${SHARED_POSTGRES_URL} (${postgres})`;
  return (await sharedBusAvailable('redis')) ? undefined : `no Redis at ${SHARED_URL.redis}`;
}

export interface SharedStoreSuite {
  /** Released after each test: processes, clients, private servers. */
  readonly run: Resources;
  /** The suite's secrets, the same for every instance. */
  readonly secrets: Readonly<Record<string, string>>;
  /** The environment of instances sharing a fresh schema and the suite's Redis prefix (plus `suffix`). */
  env(suffix?: string): Promise<Record<string, string>>;
  /** A Relais instance with `env` (from `env()`), released after the test. */
  instance(env: Record<string, string>): Promise<RelaisProcess>;
}

/** Call inside a describe: registers the hooks that release what the suite made. */
export function sharedStoreSuite(label: string): SharedStoreSuite {
  const run = new Resources();
  const schemas: string[] = [];
  const prefix = `relais-${label}-${randomBytes(4).toString('hex')}`;
  const secrets = { RELAIS_TOKEN_SECRET: `${label}-secret-${randomBytes(8).toString('hex')}`, RELAIS_API_KEY: `${label}-key-${randomBytes(8).toString('hex')}` };
  afterEach(async () => {
    await run.release();
  });
  afterAll(async () => {
    await run.release();
    await dropSchemas(SHARED_POSTGRES_URL, schemas);
    await deletePrefix('redis', prefix);
  });
  return {
    run,
    secrets,
    async env(suffix = '') {
      const schema = newSchemaName();
      await createSchema(SHARED_POSTGRES_URL, schema);
      schemas.push(schema);
      return { ...secrets, DATABASE_URL: SHARED_POSTGRES_URL, RELAIS_DB_SCHEMA: schema, ...busEnv('redis', SHARED_URL.redis, `${prefix}${suffix}`) };
    },
    async instance(env) {
      const relais = await startRelais({ env });
      run.processes.push(relais);
      return relais;
    },
  };
}
