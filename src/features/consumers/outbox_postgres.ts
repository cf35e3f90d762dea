import pg from 'pg';
import type { Logger } from 'pino';
import type { ApiDispatcher } from './dispatcher.js';
import { parsePayload, retryDelayMs } from './dispatcher.js';

export interface PostgresOutboxOptions {
  readonly url: string;
  /** Table name, optionally schema.table (checked by the config schema: lowercase identifiers only). */
  readonly table: string;
  readonly partitions: number;
  readonly selectLimit: number;
  readonly pollIntervalMs: number;
  readonly notifyChannel?: string;
  readonly dispatcher: ApiDispatcher;
  readonly logger: Logger;
}

interface OutboxRow {
  /** As text: a bigint may exceed what a JS number holds exactly. */
  readonly row_id: string;
  readonly method: string;
  readonly payload: unknown;
}

/**
 * Consumes a transactional outbox table in the app's PostgreSQL, in Centrifugo's schema
 * (`id bigserial, method text, payload jsonb, partition integer, created_at timestamptz`):
 * the app inserts a row in the transaction that changes its data, so the publication happens
 * if and only if that transaction commits.
 *
 * Per partition, one transaction at a time: take the partition's advisory lock (try: an
 * instance holding it is already working there), read the oldest rows, run each in id order
 * through the server API, delete those run, commit. Several instances share the partitions
 * and never work on one at once. A row is deleted only with the commit that follows its
 * publication; an instance killed in between leaves its rows to the next one, which publishes
 * them again under the same idempotency key (`outbox:<table>:<id>`): the bus publishes each
 * once while it remembers the key.
 *
 * An idle partition is read again on a notification on `notifyChannel` (payload: the
 * partition) or after `pollIntervalMs`.
 */
export class PostgresOutboxConsumer {
  private readonly pool: pg.Pool;
  private listener: pg.Client | undefined;
  private readonly wakers: ((() => void) | undefined)[] = [];
  private readonly loops: Promise<void>[] = [];
  private stopped = false;

  constructor(private readonly options: PostgresOutboxOptions) {
    this.pool = new pg.Pool({ connectionString: options.url, max: options.partitions + 1, connectionTimeoutMillis: 5000 });
    this.pool.on('error', (err) => options.logger.warn({ err }, 'outbox connection lost'));
  }

  start(): void {
    if (this.options.notifyChannel) void this.listen(this.options.notifyChannel);
    for (let partition = 0; partition < this.options.partitions; partition++) this.loops.push(this.run(partition));
  }

  /** Stops after the transactions in flight (their rows are committed or left for later). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of this.wakers) wake?.();
    await Promise.allSettled(this.loops);
    await this.listener?.end().catch(() => undefined);
    await this.pool.end();
  }

  private async run(partition: number): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let outcome: number | 'busy';
      try {
        outcome = await this.processOnce(partition);
        failures = 0;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0) this.options.logger.warn({ err, partition, failures }, 'outbox partition failed; retrying');
        await this.idle(partition, retryDelayMs(failures));
        continue;
      }
      // A full batch means more may be waiting: go on at once.
      if (outcome === 'busy' || outcome < this.options.selectLimit) await this.idle(partition, this.options.pollIntervalMs);
    }
  }

  /** One transaction on a partition: resolves with the rows run, or 'busy' when another instance holds it. */
  private async processOnce(partition: number): Promise<number | 'busy'> {
    const client = await this.pool.connect();
    let broken = false;
    let failure: Error | undefined;
    try {
      await client.query('BEGIN');
      const locked = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock(hashtext($1)) AS locked', [
        `relais.outbox:${this.options.table}:${partition}`,
      ]);
      if (!locked.rows[0]?.locked) {
        await client.query('ROLLBACK');
        return 'busy';
      }
      const rows = await client.query<OutboxRow>(`SELECT id::text AS row_id, method, payload FROM ${this.options.table} WHERE partition = $1 ORDER BY id LIMIT $2`, [
        partition,
        this.options.selectLimit,
      ]);
      const done: string[] = [];
      for (const row of rows.rows) {
        try {
          const outcome = await this.options.dispatcher.dispatch(row.method, parsePayload(row.payload), `outbox:${this.options.table}:${row.row_id}`);
          if (outcome === 'invalid') this.options.logger.error({ id: row.row_id, method: row.method, partition }, 'outbox row refused for good: removed');
          done.push(row.row_id);
        } catch (err) {
          // Later rows wait for this one: order within the partition holds.
          failure = err instanceof Error ? err : new Error(String(err));
          break;
        }
      }
      if (done.length > 0) await client.query(`DELETE FROM ${this.options.table} WHERE id = ANY($1::bigint[])`, [done]);
      await client.query('COMMIT');
      if (failure === undefined) return done.length;
    } catch (err) {
      broken = true;
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release(broken);
    }
    throw failure;
  }

  private idle(partition: number, ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const wakers = this.wakers;
      function done(): void {
        clearTimeout(timer);
        wakers[partition] = undefined;
        resolve();
      }
      this.wakers[partition] = done;
    });
  }

  /** LISTEN on its own connection, reconnecting after a loss (the poll covers the gap). */
  private async listen(channel: string): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const client = new pg.Client({ connectionString: this.options.url });
      try {
        const lost = new Promise<void>((resolve) => {
          client.on('error', () => resolve());
          client.on('end', () => resolve());
        });
        await client.connect();
        client.on('notification', (message) => {
          const partition = Number(message.payload);
          if (Number.isInteger(partition)) this.wakers[partition]?.();
        });
        await client.query(`LISTEN ${channel}`);
        this.listener = client;
        failures = 0;
        // Rows committed before LISTEN took effect are found by a read now.
        for (const wake of this.wakers) wake?.();
        await lost;
      } catch (err) {
        failures++;
        if (failures === 1 || failures % 20 === 0) this.options.logger.warn({ err }, 'outbox LISTEN failed; polling until it is back');
      }
      await client.end().catch(() => undefined);
      if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, retryDelayMs(failures)));
    }
  }
}
