/**
 * The PostgreSQL store (node-postgres pool), for several Relais instances sharing one
 * database. A group-commit batch is one transaction of three or four statements: lock the
 * batch's channel rows (creating missing ones), look up idempotency keys, then move the
 * channel tops and insert every message from parameter arrays.
 */
import type pg from 'pg';
import { RelaisError } from '../../core/errors.js';
import type { StreamPosition } from '../../core/publication.js';
import { GroupCommit, type PendingCall } from '../group_commit.js';
import { checkMigrationSets, pendingMigrations, SchemaError, type MigrationSet } from '../migrations.js';
import { columnsOf, messageOfRequest, messageOfRow, newEpoch, type MessageRow } from '../rows.js';
import {
  silentStoreLogger,
  type AppendRequest,
  type AppendResult,
  type ChannelSummary,
  type MessagePage,
  type MigrationReport,
  type NewRoom,
  type PageQuery,
  type RangeQuery,
  type ReadState,
  type Room,
  type RoomMember,
  type Store,
  type StoredMessage,
  type StoreLogger,
  type TrimRule,
  type UserRoom,
} from '../store.js';
import { checkAppendRequest, checkInteger, checkLimit, checkName, checkRevocation, checkText, checkUser, MAX_LIMIT, MAX_NAME_LENGTH } from '../validate.js';
import { postgresStoreMigrations } from './migrations_postgres.js';
import { postgresRevocationMigrations, type Revocation } from '../revocations.js';
import { createPool, postgresError, type PoolSettings } from './pool_postgres.js';
import { sql, type NamedStatement } from './statements_postgres.js';

export interface PostgresStoreOptions extends Partial<Omit<PoolSettings, 'url'>> {
  readonly url: string;
  readonly logger?: StoreLogger;
  /** Requests per group-commit transaction. Default 1,000. */
  readonly maxBatch?: number;
  /** Appends waiting beyond which new ones are refused at once. Default 100,000. */
  readonly maxQueued?: number;
  /** Group-commit transactions in flight, the next one overlapping the previous one's commit. Default 2. */
  readonly maxInFlight?: number;
  /** Features' own tables, migrated after the store's. */
  readonly migrations?: readonly MigrationSet[];
}

/** Seed 002's values. */
export const postgresPoolDefaults = {
  poolMax: 20,
  poolMin: 2,
  idleTimeoutMs: 30_000,
  connectionTimeoutMs: 2_000,
  queryTimeoutMs: 30_000,
  debugPool: false,
} as const;

/** Rows removed per statement by deleteUserMessages, each chunk its own transaction. */
const ERASE_CHUNK = 1000;
/** A `before` above every offset: page() from the newest. */
const NO_BEFORE = Number.MAX_SAFE_INTEGER;

type Bigint = string | number;

interface ChannelMessageRow extends Omit<MessageRow, 'seq' | 'time' | 'data'> {
  readonly top: Bigint;
  readonly epoch: string;
  readonly seq: Bigint | null;
  readonly time: Bigint | null;
  readonly data: string | null;
}

interface RoomRow {
  readonly name: string;
  readonly title: string | null;
  readonly created_by: string;
  readonly created_at: Bigint;
}

interface UserRoomRow extends RoomRow, Omit<ChannelMessageRow, 'top' | 'epoch'> {
  readonly epoch: string | null;
  readonly top: Bigint | null;
  readonly read_seq: Bigint | null;
}

function roomOfRow(row: RoomRow): Room {
  return { name: row.name, createdBy: row.created_by, createdAt: Number(row.created_at), ...(row.title !== null ? { title: row.title } : {}) };
}

/** Messages of a channel-joined read; a row without `seq` is the channel's own (no message). */
function pageOfRows(channel: string, rows: readonly ChannelMessageRow[]): MessagePage {
  const first = rows[0];
  if (first === undefined) return { messages: [], position: { offset: 0, epoch: '' } };
  const position = { offset: Number(first.top), epoch: first.epoch };
  const messages: StoredMessage[] = [];
  for (const row of rows) {
    if (row.seq === null || row.time === null || row.data === null) continue;
    messages.push(messageOfRow(channel, position.epoch, { ...row, seq: row.seq, time: row.time, data: row.data }));
  }
  return { messages, position };
}

export class PostgresStore implements Store {
  readonly kind = 'postgres';
  private readonly pool: pg.Pool;
  private readonly stopPool: () => void;
  private readonly group: GroupCommit<AppendRequest, AppendResult>;
  private readonly migrationSets: readonly MigrationSet[];
  private readonly schema: string | undefined;
  private closed = false;

  constructor(options: PostgresStoreOptions) {
    this.migrationSets = [postgresStoreMigrations, postgresRevocationMigrations, ...(options.migrations ?? [])];
    checkMigrationSets(this.migrationSets);
    this.schema = options.schema;
    const settings: PoolSettings = { ...postgresPoolDefaults, ...options };
    ({ pool: this.pool, stop: this.stopPool } = createPool(settings, options.logger ?? silentStoreLogger));
    // Two in flight: the next batch locks and writes while the previous one waits for its
    // commit's disk flush (see GroupCommitOptions.maxInFlight for why order holds).
    this.group = new GroupCommit((calls, committing) => this.commit(calls, committing), {
      maxBatch: options.maxBatch ?? 1000,
      maxQueued: options.maxQueued ?? 100_000,
      maxInFlight: options.maxInFlight ?? 2,
    });
  }

  private async query<Row extends pg.QueryResultRow>(statement: NamedStatement, values: readonly unknown[]): Promise<pg.QueryResult<Row>> {
    if (this.closed) throw new RelaisError('STORE_UNAVAILABLE', 'store closed');
    try {
      return await this.pool.query<Row>({ name: statement.name, text: statement.text, values: [...values] });
    } catch (err) {
      throw postgresError(err);
    }
  }

  /**
   * One transaction on one pooled connection; failures drop the connection, which also ends
   * the transaction server-side. Connections run in pipeline mode: statements are sent
   * without waiting for the previous answer (the server still runs them in order), so BEGIN
   * travels with the first statement, and what `work` hands to `defer` travels with COMMIT.
   * `beforeCommit` runs once `work` is done and only COMMIT (and the deferred) are left.
   */
  private async transaction<T>(
    work: (client: pg.PoolClient, defer: (statement: Promise<unknown>) => void) => Promise<T>,
    beforeCommit?: () => void,
  ): Promise<T> {
    if (this.closed) throw new RelaisError('STORE_UNAVAILABLE', 'store closed');
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw postgresError(err);
    }
    // A checked-out connection has no pool listener: a connection lost between two statements
    // would otherwise be an uncaught 'error' event. The failing statement reports it.
    const onError = (): void => undefined;
    client.on('error', onError);
    const pending: Promise<unknown>[] = [];
    const defer = (statement: Promise<unknown>): void => {
      // Awaited below; until then a failure must not count as unhandled.
      statement.catch(() => undefined);
      pending.push(statement);
    };
    try {
      defer(client.query('BEGIN'));
      const result = await work(client, defer);
      beforeCommit?.();
      // A deferred statement that failed makes COMMIT answer ROLLBACK: its own error is what counts.
      await Promise.all([...pending, client.query('COMMIT')]);
      client.off('error', onError);
      client.release();
      return result;
    } catch (err) {
      client.off('error', onError);
      // Not reused: after a timeout the connection may still be running the statement.
      client.release(err instanceof Error ? err : new Error(String(err)));
      throw postgresError(err);
    }
  }

  migrate(): Promise<MigrationReport> {
    return this.transaction(async (client) => {
      const current = await client.query<{ schema: string | null }>('SELECT current_schema() AS schema');
      if (current.rows[0]?.schema == null) {
        throw new SchemaError(`PostgreSQL schema "${this.schema ?? 'public'}" does not exist: create it (CREATE SCHEMA) or choose another`);
      }
      // Instances starting together queue here; the lock ends with the transaction.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('relais.migrations:' || current_schema()))");
      await client.query(
        'CREATE TABLE IF NOT EXISTS schema_migrations (component text NOT NULL, version integer NOT NULL, name text NOT NULL, applied_at bigint NOT NULL, PRIMARY KEY (component, version))',
      );
      const plans = [];
      // Every component is checked before any is changed: a newer database refuses whole.
      for (const set of this.migrationSets) {
        const found = await client.query<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations WHERE component = $1', [set.component]);
        plans.push({ set, pending: pendingMigrations(set, found.rows[0]?.version ?? 0) });
      }
      const applied: number[] = [];
      for (const { set, pending } of plans) {
        for (const migration of pending) {
          await client.query(migration.sql);
          await client.query('INSERT INTO schema_migrations (component, version, name, applied_at) VALUES ($1, $2, $3, $4)', [
            set.component,
            migration.version,
            migration.name,
            Date.now(),
          ]);
          if (set.component === 'store') applied.push(migration.version);
        }
      }
      return { applied, version: postgresStoreMigrations.migrations.length };
    });
  }

  async append(requests: readonly AppendRequest[]): Promise<readonly AppendResult[]> {
    // Checked before queueing: a bad call fails alone, never the batch it would have joined.
    requests.forEach(checkAppendRequest);
    if (requests.length === 0) return [];
    return this.group.submit(requests);
  }

  private commit(calls: readonly PendingCall<AppendRequest, AppendResult>[], committing: () => void): Promise<readonly (readonly AppendResult[])[]> {
    return this.transaction(async (client, defer) => {
      const names = [...new Set(calls.flatMap((call) => call.requests.map((r) => r.channel)))];
      const now = Math.max(...calls.flatMap((call) => call.requests.map((r) => r.time)));
      const locking = client.query<{ name: string; epoch: string; top: Bigint }>({
        ...sql.lockChannels,
        values: [names, names.map(() => newEpoch()), now],
      });
      // Keys are looked up after the channel rows are locked (the server runs the pipelined
      // statements in order): no other instance can store one of them for these channels
      // until this transaction ends.
      const lookup = calls.flatMap((call) => call.requests.filter((r) => r.idempotencyKey !== undefined));
      const finding =
        lookup.length === 0
          ? undefined
          : client.query<MessageRow & { channel: string }>({ ...sql.byKeys, values: [lookup.map((r) => r.channel), lookup.map((r) => r.idempotencyKey)] });
      if (finding) defer(finding);
      const locked = await locking;
      const channels = new Map(locked.rows.map((row) => [row.name, { epoch: row.epoch, top: Number(row.top), updatedAt: 0, changed: false }]));
      const keyed = new Map<string, StoredMessage>();
      for (const row of (await finding)?.rows ?? []) {
        keyed.set(`${row.channel}\u0000${row.idem_key ?? ''}`, messageOfRow(row.channel, channels.get(row.channel)?.epoch ?? '', row));
      }

      const columns = { channel: [] as string[], seq: [] as number[], time: [] as number[], data: [] as string[], user: [] as (string | null)[] };
      const more = { client: [] as (string | null)[], conn: [] as (string | null)[], chan: [] as (string | null)[], tags: [] as (string | null)[], temp: [] as (string | null)[], key: [] as (string | null)[] };
      const results = calls.map((call) =>
        call.requests.map((request): AppendResult => {
          const channel = channels.get(request.channel);
          if (channel === undefined) throw new Error(`channel ${request.channel} was not locked`);
          const key = request.idempotencyKey === undefined ? undefined : `${request.channel}\u0000${request.idempotencyKey}`;
          const earlier = key === undefined ? undefined : keyed.get(key);
          if (earlier) return { message: earlier, duplicate: true };
          channel.top += 1;
          channel.changed = true;
          channel.updatedAt = Math.max(channel.updatedAt, request.time);
          const c = columnsOf(request);
          columns.channel.push(request.channel);
          columns.seq.push(channel.top);
          columns.time.push(c.time);
          columns.data.push(c.data);
          columns.user.push(c.user_id);
          more.client.push(c.client_id);
          more.conn.push(c.conn_info);
          more.chan.push(c.chan_info);
          more.tags.push(c.tags);
          more.temp.push(c.temp_id);
          more.key.push(c.idem_key);
          const message = messageOfRequest(request, channel.top, channel.epoch);
          if (key !== undefined) keyed.set(key, message);
          return { message, duplicate: false };
        }),
      );
      if (columns.channel.length > 0) {
        const moved = [...channels].filter(([, ch]) => ch.changed);
        // Sent with COMMIT: the offsets are taken, and the locked rows hold off any other batch.
        defer(client.query({
          ...sql.write,
          values: [
            moved.map(([name]) => name),
            moved.map(([, ch]) => ch.top),
            moved.map(([, ch]) => ch.updatedAt),
            columns.channel,
            columns.seq,
            columns.time,
            columns.data,
            columns.user,
            more.client,
            more.conn,
            more.chan,
            more.tags,
            more.temp,
            more.key,
          ],
        }));
      }
      return results;
    }, committing);
  }

  async range(channel: string, query: RangeQuery): Promise<MessagePage> {
    checkName('channel', channel);
    const after = query.after === undefined ? 0 : checkInteger('after', query.after);
    const result = await this.query<ChannelMessageRow>(sql.rangeAfter, [channel, after, checkLimit('limit', query.limit)]);
    return pageOfRows(channel, result.rows);
  }

  async page(channel: string, query: PageQuery): Promise<MessagePage> {
    checkName('channel', channel);
    const before = query.before === undefined ? NO_BEFORE : checkInteger('before', query.before);
    const result = await this.query<ChannelMessageRow>(sql.pageBefore, [channel, before, checkLimit('limit', query.limit)]);
    return pageOfRows(channel, result.rows);
  }

  async latest(channel: string, count: number): Promise<MessagePage> {
    const newest = await this.page(channel, { limit: checkLimit('count', count) });
    return { messages: [...newest.messages].reverse(), position: newest.position };
  }

  async position(channel: string): Promise<StreamPosition> {
    const result = await this.query<{ top: Bigint; epoch: string }>(sql.position, [checkName('channel', channel)]);
    const row = result.rows[0];
    return row ? { offset: Number(row.top), epoch: row.epoch } : { offset: 0, epoch: '' };
  }

  async open(channel: string): Promise<StreamPosition> {
    const result = await this.query<{ top: Bigint; epoch: string }>(sql.openChannel, [checkName('channel', channel), newEpoch(), Date.now()]);
    const row = result.rows[0];
    // A row created by a concurrent statement after this one's snapshot: read it anew.
    return row ? { offset: Number(row.top), epoch: row.epoch } : this.position(channel);
  }

  async clear(channel: string): Promise<StreamPosition> {
    checkName('channel', channel);
    const epoch = newEpoch();
    await this.transaction(async (client) => {
      // The channel row first: it waits for appends in flight and holds off the next ones.
      await client.query({ ...sql.resetChannel, values: [channel, epoch, Date.now()] });
      await client.query({ ...sql.deleteChannelMessages, values: [channel] });
      await client.query({ ...sql.deleteChannelReadPositions, values: [channel] });
    });
    return { offset: 0, epoch };
  }

  async deleteUserMessages(user: string): Promise<number> {
    checkUser('user', user);
    let total = 0;
    for (;;) {
      const removed = (await this.query(sql.deleteUserChunk, [user, ERASE_CHUNK])).rowCount ?? 0;
      total += removed;
      if (removed < ERASE_CHUNK) return total;
    }
  }

  async listChannels(after: string, limit: number): Promise<readonly ChannelSummary[]> {
    checkText('after', after, 0, MAX_NAME_LENGTH);
    const result = await this.query<{ name: string; epoch: string; top: Bigint; updated_at: Bigint }>(sql.listChannels, [after, checkLimit('limit', limit)]);
    return result.rows.map((row) => ({ channel: row.name, position: { offset: Number(row.top), epoch: row.epoch }, updatedAt: Number(row.updated_at) }));
  }

  async trim(channel: string, rule: TrimRule): Promise<number> {
    checkName('channel', channel);
    const minTime = checkInteger('minTime', rule.minTime);
    const maxOffset = checkInteger('maxOffset', rule.maxOffset);
    const limit = checkLimit('limit', rule.limit);
    return this.transaction(async (client) => {
      // Locked so that a clear() cannot slip in: its new offsets would fall under the delete.
      const locked = await client.query({ ...sql.lockChannel, values: [channel] });
      if (locked.rowCount === 0) return 0;
      const oldest = await client.query<{ seq: Bigint; time: Bigint }>({ ...sql.oldest, values: [channel, limit] });
      let last = 0;
      let count = 0;
      for (const row of oldest.rows) {
        if (Number(row.seq) > maxOffset && !(Number(row.time) < minTime)) break;
        last = Number(row.seq);
        count++;
      }
      if (count > 0) await client.query({ ...sql.deleteUpTo, values: [channel, last] });
      return count;
    });
  }

  async forgetIdempotencyKeys(minTime: number, limit: number): Promise<number> {
    const result = await this.query(sql.forgetKeys, [checkInteger('minTime', minTime), checkLimit('limit', limit)]);
    return result.rowCount ?? 0;
  }

  async createRoom(room: NewRoom): Promise<{ readonly room: Room; readonly created: boolean }> {
    checkName('room name', room.name);
    if (room.title !== undefined) checkText('room title', room.title, 0, MAX_NAME_LENGTH);
    checkUser('room createdBy', room.createdBy);
    checkInteger('room createdAt', room.createdAt);
    // Insert, else read: a room deleted between the two is inserted again (bounded tries).
    for (let attempt = 0; attempt < 3; attempt++) {
      const inserted = await this.query<RoomRow>(sql.insertRoom, [room.name, room.title ?? null, room.createdBy, room.createdAt]);
      const made = inserted.rows[0];
      if (made) return { room: roomOfRow(made), created: true };
      const existing = (await this.query<RoomRow>(sql.room, [room.name])).rows[0];
      if (existing) return { room: roomOfRow(existing), created: false };
    }
    throw new RelaisError('STORE_UNAVAILABLE', `room "${room.name}" is being created and deleted concurrently, retry`);
  }

  async getRoom(name: string): Promise<Room | undefined> {
    const row = (await this.query<RoomRow>(sql.room, [checkName('room', name)])).rows[0];
    return row ? roomOfRow(row) : undefined;
  }

  async deleteRoom(name: string): Promise<boolean> {
    checkName('room', name);
    return this.transaction(async (client) => {
      // The channel row first: it waits for appends in flight.
      await client.query({ ...sql.deleteChannel, values: [name] });
      await client.query({ ...sql.deleteChannelMessages, values: [name] });
      await client.query({ ...sql.deleteChannelReadPositions, values: [name] });
      // Members go with the room (ON DELETE CASCADE).
      return ((await client.query({ ...sql.deleteRoom, values: [name] })).rowCount ?? 0) === 1;
    });
  }

  async addMember(room: string, user: string, joinedAt: number): Promise<boolean> {
    checkName('room', room);
    checkName('user', user);
    checkInteger('joinedAt', joinedAt);
    try {
      return ((await this.query(sql.addMember, [room, user, joinedAt])).rowCount ?? 0) === 1;
    } catch (err) {
      const cause = err instanceof RelaisError ? (err.cause as { code?: unknown } | undefined) : undefined;
      if (cause?.code === '23503') throw new RelaisError('ROOM_NOT_FOUND', `room "${room}" does not exist`);
      throw err;
    }
  }

  async removeMember(room: string, user: string): Promise<boolean> {
    return ((await this.query(sql.removeMember, [checkName('room', room), checkName('user', user)])).rowCount ?? 0) === 1;
  }

  async isMember(room: string, user: string): Promise<boolean> {
    return ((await this.query(sql.isMember, [checkName('room', room), checkName('user', user)])).rowCount ?? 0) > 0;
  }

  async listMembers(room: string, after: string, limit: number): Promise<readonly RoomMember[]> {
    checkName('room', room);
    checkText('after', after, 0, MAX_NAME_LENGTH);
    const result = await this.query<{ user_id: string; joined_at: Bigint }>(sql.listMembers, [room, after, checkLimit('limit', limit)]);
    return result.rows.map((row) => ({ user: row.user_id, joinedAt: Number(row.joined_at) }));
  }

  async listUserRooms(user: string, limit: number): Promise<readonly UserRoom[]> {
    checkName('user', user);
    const result = await this.query<UserRoomRow>(sql.userRooms, [user, checkLimit('limit', limit)]);
    return result.rows.map((row): UserRoom => {
      const position = row.epoch === null ? { offset: 0, epoch: '' } : { offset: Number(row.top ?? 0), epoch: row.epoch };
      const readOffset = Number(row.read_seq ?? 0);
      const lastMessage =
        row.seq === null || row.time === null || row.data === null
          ? undefined
          : messageOfRow(row.name, position.epoch, { ...row, seq: row.seq, time: row.time, data: row.data });
      return { room: roomOfRow(row), position, readOffset, unread: Math.max(0, position.offset - readOffset), ...(lastMessage ? { lastMessage } : {}) };
    });
  }

  async setReadPosition(channel: string, user: string, offset: number): Promise<number> {
    checkName('channel', channel);
    checkName('user', user);
    checkInteger('offset', offset);
    const result = await this.query<{ seq: Bigint }>(sql.setReadPosition, [channel, user, offset, Date.now()]);
    return Number(result.rows[0]?.seq ?? 0);
  }

  async readState(channel: string, user: string): Promise<ReadState> {
    checkName('channel', channel);
    checkName('user', user);
    const row = (await this.query<{ top: Bigint | null; epoch: string | null; read_seq: Bigint | null }>(sql.readState, [channel, user])).rows[0];
    const position = row?.epoch == null ? { offset: 0, epoch: '' } : { offset: Number(row.top ?? 0), epoch: row.epoch };
    const readOffset = Number(row?.read_seq ?? 0);
    return { readOffset, position, unread: Math.max(0, position.offset - readOffset) };
  }

  async touchUser(user: string, time: number): Promise<void> {
    await this.query(sql.touchUser, [checkName('user', user), checkInteger('time', time)]);
  }

  async lastSeen(user: string): Promise<number | undefined> {
    return (await this.lastSeenMany([user])).get(user);
  }

  async lastSeenMany(users: readonly string[]): Promise<ReadonlyMap<string, number>> {
    if (users.length > MAX_LIMIT) checkLimit('number of users', users.length);
    users.forEach((user) => checkName('user', user));
    if (users.length === 0) return new Map();
    const result = await this.query<{ user_id: string; last_seen: Bigint }>(sql.lastSeen, [users]);
    return new Map(result.rows.map((row) => [row.user_id, Number(row.last_seen)]));
  }

  async putRevocation(revocation: Revocation): Promise<void> {
    const r = checkRevocation(revocation);
    await this.query(sql.putRevocation, [r.kind, r.key, r.issuedBefore, r.expiresAt]);
  }

  async deleteRevocation(kind: Revocation['kind'], key: string): Promise<boolean> {
    return ((await this.query(sql.deleteRevocation, [kind, checkName('key', key)])).rowCount ?? 0) > 0;
  }

  async listRevocations(now: number, limit: number): Promise<readonly Revocation[]> {
    await this.query(sql.forgetRevocations, [checkInteger('now', now)]);
    const result = await this.query<{ kind: Revocation['kind']; key: string; issued_before: Bigint; expires_at: Bigint }>(sql.listRevocations, [
      checkLimit('limit', limit, 100_000),
    ]);
    return result.rows.map((row) => ({ kind: row.kind, key: row.key, issuedBefore: Number(row.issued_before), expiresAt: Number(row.expires_at) }));
  }

  async ping(): Promise<void> {
    await this.query({ name: 'relais_ping', text: 'SELECT 1' }, []);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.group.close();
    this.closed = true;
    this.stopPool();
    await this.pool.end();
  }
}
