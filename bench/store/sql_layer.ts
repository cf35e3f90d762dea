/**
 * The SQL layer decision, measured: the store as written (plain SQL per dialect, prepared
 * statements, one unnest insert per batch on PostgreSQL) against the same work through Kysely
 * (query builder, its SQLite and PostgreSQL dialects), on the same tables. Appends of 1 and of
 * 100 messages per transaction, and range reads of 50, each for --seconds (default 2).
 *
 *   node --import tsx bench/store/sql_layer.ts [--stores sqlite,postgres] [--seconds 2]
 */
import { parseArgs } from 'node:util';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type Generated } from 'kysely';
import pg from 'pg';
import type { JsonText } from '../../src/core/json.js';
import type { AppendRequest } from '../../src/stores/store.js';
import { newEpoch } from '../../src/stores/rows.js';
import { openBenchStore, POSTGRES_URL, type BenchStore, type StoreKind } from './stores.js';

const { values: args } = parseArgs({ options: { stores: { type: 'string', default: 'sqlite,postgres' }, seconds: { type: 'string', default: '2' } } });
const stepMs = Number(args.seconds) * 1000;

interface Tables {
  channels: { name: string; epoch: string; top: number; created_at: number; updated_at: number };
  messages: {
    channel: string;
    seq: number;
    time: number;
    data: string;
    user_id: string | null;
    client_id: string | null;
    conn_info: string | null;
    chan_info: string | null;
    tags: string | null;
    temp_id: string | null;
    idem_key: string | null;
    _rowid?: Generated<number>;
  };
}

let counter = 0;
function requests(channel: string, n: number): AppendRequest[] {
  return Array.from({ length: n }, () => {
    const i = counter++;
    return { channel, data: JSON.stringify({ text: `message ${i} of a chat, a few words long`, at: i }) as JsonText, info: { user: 'u1', client: 'c1' }, tempId: `t${i}`, time: Date.now() };
  });
}

/** The store's append transaction, through Kysely: create/lock the channel row, insert the rows, move the top. */
async function kyselyAppend(db: Kysely<Tables>, kind: StoreKind, batch: readonly AppendRequest[]): Promise<void> {
  const channel = batch[0]?.channel ?? '';
  await db.transaction().execute(async (trx) => {
    const now = Date.now();
    const row =
      kind === 'postgres'
        ? await trx
            .insertInto('channels')
            .values({ name: channel, epoch: newEpoch(), top: 0, created_at: now, updated_at: now })
            .onConflict((oc) => oc.column('name').doUpdateSet((eb) => ({ top: eb.ref('channels.top') })))
            .returning(['epoch', 'top'])
            .executeTakeFirstOrThrow()
        : await (async () => {
            await trx.insertInto('channels').values({ name: channel, epoch: newEpoch(), top: 0, created_at: now, updated_at: now }).onConflict((oc) => oc.column('name').doNothing()).execute();
            return trx.selectFrom('channels').select(['epoch', 'top']).where('name', '=', channel).executeTakeFirstOrThrow();
          })();
    let top = Number(row.top);
    await trx
      .insertInto('messages')
      .values(
        batch.map((r) => ({
          channel,
          seq: ++top,
          time: r.time,
          data: r.data,
          user_id: r.info?.user ?? null,
          client_id: r.info?.client ?? null,
          conn_info: null,
          chan_info: null,
          tags: null,
          temp_id: r.tempId ?? null,
          idem_key: null,
        })),
      )
      .execute();
    await trx.updateTable('channels').set({ top, updated_at: now }).where('name', '=', channel).execute();
  });
}

async function kyselyRange(db: Kysely<Tables>, channel: string, after: number): Promise<number> {
  const rows = await db
    .selectFrom('messages')
    .select(['seq', 'time', 'data', 'user_id', 'client_id', 'conn_info', 'chan_info', 'tags', 'temp_id', 'idem_key'])
    .where('channel', '=', channel)
    .where('seq', '>', after)
    .orderBy('seq')
    .limit(50)
    .execute();
  return rows.length;
}

async function timed(work: () => Promise<number>): Promise<number> {
  let items = 0;
  const t0 = performance.now();
  for (let i = 0; i < 10_000_000 && performance.now() - t0 < stepMs; i++) items += await work();
  return items / ((performance.now() - t0) / 1000);
}

function kyselyFor(kind: StoreKind, bench: BenchStore): { db: Kysely<Tables>; close: () => Promise<void> } {
  if (kind === 'sqlite') {
    const database = new BetterSqlite3(bench.where);
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = NORMAL');
    const db = new Kysely<Tables>({ dialect: new SqliteDialect({ database }) });
    return { db, close: () => db.destroy() };
  }
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max: 2, options: `-c search_path=${bench.where}` });
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  return { db, close: () => db.destroy() };
}

async function main(): Promise<void> {
  const rows = ['| store | operation | plain SQL (the store) | Kysely | Kysely / plain |', '|---|---|---:|---:|---:|'];
  for (const kind of args.stores.split(',') as StoreKind[]) {
    const bench = await openBenchStore(kind);
    const kysely = kyselyFor(kind, bench);
    try {
      const { store } = bench;
      const cells: [string, () => Promise<number>, () => Promise<number>][] = [
        ['append, 1 message per transaction (messages/s)', async () => (await store.append(requests('chat:plain1', 1))).length, async () => (await kyselyAppend(kysely.db, kind, requests('chat:kysely1', 1)), 1)],
        ['append, 100 messages per transaction (messages/s)', async () => (await store.append(requests('chat:plain100', 100))).length, async () => (await kyselyAppend(kysely.db, kind, requests('chat:kysely100', 100)), 100)],
      ];
      // Range reads over what the appends wrote, cycling through the channel.
      let plainAfter = 0;
      let kyselyAfter = 0;
      cells.push([
        'range read of 50 (reads/s)',
        async () => {
          const page = await store.range('chat:plain100', { after: plainAfter, limit: 50 });
          plainAfter = page.messages.length === 50 ? plainAfter + 50 : 0;
          return 1;
        },
        async () => {
          const n = await kyselyRange(kysely.db, 'chat:kysely100', kyselyAfter);
          kyselyAfter = n === 50 ? kyselyAfter + 50 : 0;
          return 1;
        },
      ]);
      for (const [label, plainWork, kyselyWork] of cells) {
        const plain = await timed(plainWork);
        const ky = await timed(kyselyWork);
        const line = `| ${kind} | ${label} | ${Math.round(plain).toLocaleString('en-US')} | ${Math.round(ky).toLocaleString('en-US')} | ${(ky / plain).toFixed(2)} |`;
        rows.push(line);
        console.error(line);
      }
    } finally {
      await kysely.close();
      await bench.dispose();
    }
  }
  console.log(rows.join('\n'));
}

await main();
