/**
 * The PostgreSQL store: the contract suite on the machine's PostgreSQL (database `test`), each
 * test in a fresh schema dropped afterwards, a second instance being a second store on the same
 * schema; then the failure behaviour against a private server this file starts, stops and
 * freezes. With CI=true an unreachable PostgreSQL, or missing server binaries, fail the run.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelaisError } from '../../core/errors.js';
import type { JsonText } from '../../core/json.js';
import { describeStoreContract, rejection, within, type StoreFactoryOptions } from '../store.contract.js';
import type { StoreLogger } from '../store.js';
import { PostgresStore, type PostgresStoreOptions } from './store_postgres.js';
import {
  createSchema,
  dropSchemas,
  newSchemaName,
  postgresBinDir,
  postgresUnreachable,
  PrivatePostgres,
  SHARED_POSTGRES_URL,
} from '../../../test/helpers/postgres.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const json = (value: unknown): JsonText => JSON.stringify(value) as JsonText;

function failOrSkip(what: string, reason: string): void {
  if (process.env.CI === 'true') {
    describe(what, () => {
      it(`needs it (CI=true: a failure, not a skip): ${reason}`, () => {
        throw new Error(reason);
      });
    });
  } else {
    console.warn(`${what} skipped: ${reason} (set CI=true to make this a failure)`);
    describe.skip(`${what} (skipped: ${reason})`, () => {
      it('needs PostgreSQL', () => undefined);
    });
  }
}

const unreachable = await postgresUnreachable(SHARED_POSTGRES_URL);

if (unreachable !== undefined) {
  failOrSkip('PostgreSQL store contract', `PostgreSQL is not reachable at ${SHARED_POSTGRES_URL}: ${unreachable}`);
} else {
  let schemas: string[] = [];
  let current = '';

  const make = (options?: StoreFactoryOptions): PostgresStore =>
    new PostgresStore({
      url: SHARED_POSTGRES_URL,
      schema: current,
      poolMin: 0,
      poolMax: 8,
      ...(options?.shortTimeouts ? { queryTimeoutMs: 500, connectionTimeoutMs: 1000 } : { queryTimeoutMs: 10_000 }),
      ...(options?.migrations ? { migrations: options.migrations } : {}),
    });

  describeStoreContract('postgres', {
    fresh: async (options) => {
      current = newSchemaName();
      schemas.push(current);
      await createSchema(SHARED_POSTGRES_URL, current);
      return make(options);
    },
    sibling: (options) => Promise.resolve(make(options)),
    holdWriteLock: async (channel) => {
      const client = new pg.Client({ connectionString: SHARED_POSTGRES_URL, options: `-c search_path=${current}` });
      client.on('error', () => undefined);
      await client.connect();
      await client.query('BEGIN');
      const held = await client.query('SELECT top FROM channels WHERE name = $1 FOR UPDATE', [channel]);
      expect(held.rowCount).toBe(1);
      return async () => {
        await client.query('ROLLBACK');
        await client.end();
      };
    },
    cleanup: async () => {
      await dropSchemas(SHARED_POSTGRES_URL, schemas);
      schemas = [];
    },
  });

  describe('PostgreSQL store on the shared server', () => {
    it('refuses a schema that does not exist, and one whose name is not plain', async () => {
      const store = new PostgresStore({ url: SHARED_POSTGRES_URL, schema: newSchemaName(), poolMin: 0 });
      try {
        await expect(store.migrate()).rejects.toThrow(/schema "relais_test_[0-9a-f]+" does not exist/);
      } finally {
        await store.close();
      }
      expect(() => new PostgresStore({ url: SHARED_POSTGRES_URL, schema: 'x; DROP SCHEMA public' })).toThrow(/schema name/);
    });

    it('logs pool events and counts through the given logger with debugPool', async () => {
      const lines: string[] = [];
      const logger: StoreLogger = { info: (_o, msg) => lines.push(msg), warn: (_o, msg) => lines.push(msg), error: (_o, msg) => lines.push(msg) };
      const schema = newSchemaName();
      await createSchema(SHARED_POSTGRES_URL, schema);
      const store = new PostgresStore({ url: SHARED_POSTGRES_URL, schema, poolMin: 0, debugPool: true, logger });
      try {
        await store.ping();
        expect(lines).toContain('PostgreSQL pool ready');
        expect(lines).toContain('PostgreSQL pool: connection opened');
      } finally {
        await store.close();
        await dropSchemas(SHARED_POSTGRES_URL, [schema]);
      }
    });
  });
}

const bin = postgresBinDir();
if (bin === undefined) {
  failOrSkip('PostgreSQL store against a server that stops', 'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin');
} else {
  describe('PostgreSQL store against a server that stops and freezes', () => {
    let server: PrivatePostgres | undefined;

    beforeAll(async () => {
      server = await PrivatePostgres.create();
      await server.start();
    }, 90_000);
    afterAll(async () => {
      await server?.dispose();
    }, 60_000);

    const options = (): PostgresStoreOptions => ({ url: server?.url() ?? '', poolMin: 0, poolMax: 4, connectionTimeoutMs: 1000, queryTimeoutMs: 1000 });

    async function expectUnavailable(promise: Promise<unknown>, withinMs: number): Promise<void> {
      const t0 = Date.now();
      const err: unknown = await promise.then(
        () => new Error('resolved instead of rejecting'),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RelaisError);
      expect((err as RelaisError).code).toBe('STORE_UNAVAILABLE');
      expect((err as RelaisError).temporary).toBe(true);
      expect(Date.now() - t0).toBeLessThan(withinMs);
    }

    /** Retries until the server accepts an append again; every try is bounded by the store's timeouts. */
    async function appendWhenBack(store: PostgresStore, channel: string, deadlineMs: number): Promise<number> {
      const deadline = Date.now() + deadlineMs;
      for (;;) {
        try {
          return (await store.append([{ channel, data: json('back'), time: Date.now() }]))[0]?.message.offset ?? 0;
        } catch (err) {
          if (!(err instanceof RelaisError) || err.code !== 'STORE_UNAVAILABLE' || Date.now() > deadline) throw err;
          await sleep(200);
        }
      }
    }

    it('refuses appends with a temporary error while stopped, loses nothing acknowledged, and works again once started', async () => {
      const store = new PostgresStore(options());
      try {
        await store.migrate();
        const acked = new Map<string, number>();
        const refusals: number[] = [];
        let stop = false;
        const worker = async (w: number): Promise<void> => {
          for (let i = 0; i < 100_000 && !stop; i++) {
            const id = `w${w}-${i}`;
            const t0 = Date.now();
            try {
              const [result] = await store.append([{ channel: 'chat:outage', data: json(id), idempotencyKey: id, time: Date.now() }]);
              acked.set(id, result?.message.offset ?? -1);
            } catch (err) {
              expect(err).toBeInstanceOf(RelaisError);
              expect((err as RelaisError).code).toBe('STORE_UNAVAILABLE');
              refusals.push(Date.now() - t0);
              await sleep(20);
            }
          }
        };
        const workers = Array.from({ length: 6 }, (_, w) => worker(w));
        await sleep(500);
        const before = acked.size;
        await server?.stop();
        await sleep(1500);
        await expectUnavailable(store.append([{ channel: 'chat:outage', data: json('down'), time: Date.now() }]), 3000);
        await expectUnavailable(store.range('chat:outage', { limit: 1 }), 3000);
        await expectUnavailable(store.ping(), 3000);
        await server?.start();
        expect(await within(20_000, appendWhenBack(store, 'chat:other', 15_000), 'append after restart')).toBe(1);
        await sleep(300);
        stop = true;
        await within(20_000, Promise.all(workers), 'workers');

        expect(before).toBeGreaterThan(10);
        expect(refusals.length).toBeGreaterThan(0);
        // Each refusal came within the connection timeout plus one query timeout, with slack for a loaded machine.
        expect(Math.max(...refusals)).toBeLessThan(3500);
        const stored = (await store.range('chat:outage', { limit: 10_000 })).messages;
        expect(stored.map((m) => m.offset)).toEqual(stored.map((_, i) => i + 1));
        const byId = new Map(stored.map((m) => [JSON.parse(m.data) as string, m.offset]));
        expect(byId.size).toBe(stored.length);
        for (const [id, offset] of acked) expect(byId.get(id)).toBe(offset);
      } finally {
        await store.close();
      }
    }, 90_000);

    it('gives up within the timeouts when the server stops answering, and recovers when it answers again', async () => {
      const store = new PostgresStore(options());
      try {
        await store.migrate();
        await store.append([{ channel: 'chat:frozen', data: json('before'), time: Date.now() }]);
        server?.freeze();
        try {
          // The pooled connection's statement gets no answer; a new connection gets no handshake.
          await expectUnavailable(store.append([{ channel: 'chat:frozen', data: json('frozen'), time: Date.now() }]), 4000);
          await expectUnavailable(store.range('chat:frozen', { limit: 10 }), 4000);
          expect(await rejection(store.isMember('room:x', 'alice'))).toBe('STORE_UNAVAILABLE');
        } finally {
          server?.thaw();
        }
        expect(await within(20_000, appendWhenBack(store, 'chat:frozen', 15_000), 'append after thaw')).toBeGreaterThanOrEqual(2);
        const values = (await store.range('chat:frozen', { limit: 10 })).messages.map((m) => JSON.parse(m.data) as string);
        expect(values[0]).toBe('before');
        expect(values[values.length - 1]).toBe('back');
      } finally {
        await store.close();
      }
    }, 90_000);
  });
}
