/**
 * Transactional outbox throughput (issue 13): rows written by the app into its outbox table
 * (Centrifugo's schema) and published by Relais, rows per second from insert to published.
 *
 *   node --import tsx bench/outbox/run.ts [--rows 20000] [--partitions 1,4] [--bus memory|redis]
 *
 * Per partition count: a fresh table, a Relais process (from dist/: npm run build first)
 * consuming it with LISTEN/NOTIFY, the rows inserted in transactions of 100 rows (one NOTIFY
 * each), then the time until the table is empty. PostgreSQL: OUTBOX_DATABASE_URL, default the
 * machine's server (`test` database); Redis: REDIS_URL, default the machine's.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { values } = parseArgs({
  options: { rows: { type: 'string', default: '20000' }, partitions: { type: 'string', default: '1,4' }, bus: { type: 'string', default: 'redis' } },
});
const ROWS = Number(values.rows);
const DB = process.env['OUTBOX_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const CLI = resolve(import.meta.dirname, '../../dist/src/cli/main.js');
const BATCH = 100;

async function relais(table: string, partitions: number): Promise<{ stop(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'relais-bench-outbox-'));
  const config = join(dir, 'relais.json');
  writeFileSync(
    config,
    JSON.stringify({
      namespaces: { outbox: { history_size: 100, history_ttl: '1m' } },
      consumers: { postgres: { url: DB, table, partitions, select_limit: 500, poll_interval: '1s', notify_channel: table } },
    }),
  );
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    RELAIS_DATA_DIR: join(dir, 'data'),
    RELAIS_CONFIG: config,
    RELAIS_API_KEY: 'bench-key',
    RELAIS_TOKEN_SECRET: 'bench-secret-0123456789abcdef',
    ...(values.bus === 'redis' ? { REDIS_URL: REDIS, RELAIS_BUS_PREFIX: `bench-outbox-${randomBytes(3).toString('hex')}` } : {}),
  };
  const child = spawn(process.execPath, [CLI, 'serve'], { env: { ...env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((ready, fail) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('listening on')) ready();
    });
    child.once('exit', (code) => fail(new Error(`relais exited with ${code}`)));
  });
  return { stop: () => child.kill('SIGTERM') };
}

async function measure(db: pg.Pool, partitions: number): Promise<{ partitions: number; rows: number; seconds: number; perSecond: number }> {
  const table = `bench_outbox_${randomBytes(4).toString('hex')}`;
  await db.query(
    `CREATE TABLE ${table} (id BIGSERIAL PRIMARY KEY, method text NOT NULL, payload JSONB NOT NULL, partition INTEGER NOT NULL default 0, created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL)`,
  );
  const server = await relais(table, partitions);
  try {
    const started = performance.now();
    const client = await db.connect();
    try {
      for (let first = 0; first < ROWS; first += BATCH) {
        const partition = (first / BATCH) % partitions;
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO ${table} (method, payload, partition) SELECT 'publish', jsonb_build_object('channel', $4::text, 'data', jsonb_build_object('n', n)), $1::int FROM generate_series($2::int, $3::int) AS n`,
          [partition, first, Math.min(first + BATCH, ROWS) - 1, `outbox:p${partition}`],
        );
        await client.query('SELECT pg_notify($1, $2)', [table, String(partition)]);
        await client.query('COMMIT');
      }
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
    const deadline = Date.now() + 300_000;
    while (Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n) > 0) {
      if (Date.now() > deadline) throw new Error('outbox not drained in 5 minutes');
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (performance.now() - started) / 1000;
    return { partitions, rows: ROWS, seconds: Math.round(seconds * 100) / 100, perSecond: Math.round(ROWS / seconds) };
  } finally {
    server.stop();
    await db.query(`DROP TABLE IF EXISTS ${table}`);
  }
}

const db = new pg.Pool({ connectionString: DB, max: 2 });
try {
  for (const partitions of values.partitions.split(',').map(Number)) {
    const result = await measure(db, partitions);
    process.stdout.write(`outbox bus=${values.bus} ${JSON.stringify(result)}\n`);
  }
} finally {
  await db.end();
}
