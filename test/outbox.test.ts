/**
 * The transactional outbox: an app writes 10,000 rows into its own outbox table (a unique
 * name in the machine's PostgreSQL `test` database) in transactions, some rolled back, over
 * four partitions, while two Relais instances on the machine's Redis consume it and one of
 * them is killed with SIGKILL and started again. Every committed row is published exactly
 * once and in order within its partition (read back from the channels' history), and no
 * rolled-back row is. Under CI=true a missing service fails the suite.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, expect, it } from 'vitest';
import { busEnv, deletePrefix, describeWithBus, sharedBusAvailable, SHARED_URL } from './helpers/buses.js';
import { report, Resources, until } from './helpers/cluster.js';
import { postgresUnreachable, SHARED_POSTGRES_URL } from './helpers/postgres.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

async function missing(): Promise<string | undefined> {
  const postgres = await postgresUnreachable(SHARED_POSTGRES_URL);
  if (postgres !== undefined) return `no PostgreSQL at ${SHARED_POSTGRES_URL} (${postgres})`;
  return (await sharedBusAvailable('redis')) ? undefined : `no Redis at ${SHARED_URL.redis}`;
}

const PARTITIONS = 4;
const ROWS = 10_000;
const ROWS_PER_TRANSACTION = 10;

describeWithBus('the transactional outbox (PostgreSQL table, Redis bus)', await missing(), () => {
  const run = new Resources();
  const tables: string[] = [];
  const prefixes: string[] = [];
  const db = new pg.Pool({ connectionString: SHARED_POSTGRES_URL, max: PARTITIONS + 2 });
  afterEach(() => run.release());
  afterAll(async () => {
    for (const table of tables) await db.query(`DROP TABLE IF EXISTS ${table}`);
    await db.end();
    for (const prefix of prefixes) await deletePrefix('redis', prefix);
  });

  it('10,000 rows in transactions, some rolled back, an instance killed and restarted: each committed row published once, in order per partition', async () => {
    const table = `relais_outbox_${randomBytes(5).toString('hex')}`;
    tables.push(table);
    // Centrifugo's outbox schema.
    await db.query(`CREATE TABLE ${table} (
      id BIGSERIAL PRIMARY KEY,
      method text NOT NULL,
      payload JSONB NOT NULL,
      partition INTEGER NOT NULL default 0,
      created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL
    )`);
    const prefix = `relais-outbox-${randomBytes(4).toString('hex')}`;
    prefixes.push(prefix);
    const options = {
      env: busEnv('redis', SHARED_URL.redis, prefix),
      config: {
        client: { history_max_limit: ROWS },
        namespaces: { outbox: { history_size: ROWS, history_ttl: '10m' } },
        consumers: { postgres: { url: SHARED_POSTGRES_URL, table, partitions: PARTITIONS, select_limit: 100, poll_interval: '500ms', notify_channel: table } },
      },
    };
    const start = async (): Promise<RelaisProcess> => {
      const relais = await startRelais(options);
      run.processes.push(relais);
      return relais;
    };
    const [a, b] = await Promise.all([start(), start()]);

    // One writer per partition, so id order is commit order within a partition.
    const committed: number[][] = Array.from({ length: PARTITIONS }, () => []);
    let inserted = 0;
    let rolledBack = 0;
    let killed = false;
    let restarted: Promise<RelaisProcess> | undefined;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: PARTITIONS }, async (_, partition) => {
        const client = await db.connect();
        try {
          for (let t = 0; t < ROWS / PARTITIONS / ROWS_PER_TRANSACTION; t++) {
            const rollback = t % 7 === 3;
            const values = Array.from({ length: ROWS_PER_TRANSACTION }, (_, k) => t * ROWS_PER_TRANSACTION + k);
            await client.query('BEGIN');
            await client.query(
              `INSERT INTO ${table} (method, payload, partition) SELECT 'publish', jsonb_build_object('channel', $1::text, 'data', jsonb_build_object('n', n, 'rolled_back', $3::boolean)), $2 FROM unnest($4::int[]) AS n`,
              [`outbox:p${partition}`, partition, rollback, values],
            );
            await client.query('SELECT pg_notify($1, $2)', [table, String(partition)]);
            await client.query(rollback ? 'ROLLBACK' : 'COMMIT');
            if (rollback) rolledBack += values.length;
            else committed[partition]?.push(...values);
            inserted += values.length;
            if (!killed && inserted >= ROWS * 0.3) {
              killed = true;
              await a.kill9();
            }
            if (!restarted && inserted >= ROWS * 0.6) restarted = start();
          }
        } finally {
          client.release();
        }
      }),
    );
    await restarted;
    const remaining = async (): Promise<number> => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n);
    await until(async () => (await remaining()) === 0, 60_000, () => 'the outbox to drain');
    const drainedMs = Date.now() - started;

    for (let partition = 0; partition < PARTITIONS; partition++) {
      const history = await b.call<{ publications: { data: { n: number; rolled_back: boolean } }[] }>('history', {
        channel: `outbox:p${partition}`,
        limit: ROWS,
        since: { offset: 0, epoch: '' },
      });
      const published = history.publications.map((p) => p.data);
      expect(published.filter((d) => d.rolled_back)).toEqual([]);
      expect(published.map((d) => d.n)).toEqual(committed[partition]);
    }
    report('redis', 'outbox', {
      rows: ROWS,
      committed: committed.reduce((n, list) => n + list.length, 0),
      rolledBack,
      partitions: PARTITIONS,
      instances: 2,
      killed: 1,
      drainedMs,
    });
  });
});
