/**
 * The embedded store: one SQLite file (better-sqlite3) in WAL mode. better-sqlite3 is
 * synchronous, which suits group commit: a whole batch is one transaction run in one go,
 * and the appends of the next event-loop turns gather meanwhile.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { RelaisError } from '../../core/errors.js';
import type { StreamPosition } from '../../core/publication.js';
import { GroupCommit, type PendingCall } from '../group_commit.js';
import { checkMigrationSets, pendingMigrations, SchemaError, type MigrationSet } from '../migrations.js';
import { columnsOf, messageOfRequest, messageOfRow, newEpoch, type MessageRow } from '../rows.js';
import type {
  AppendRequest,
  AppendResult,
  ChannelSummary,
  MessagePage,
  MigrationReport,
  NewRoom,
  PageQuery,
  RangeQuery,
  ReadState,
  Room,
  RoomMember,
  Store,
  StoredMessage,
  TrimRule,
  UserRoom,
} from '../store.js';
import { checkAppendRequest, checkInteger, checkLimit, checkName, checkRevocation, checkText, checkUser, MAX_NAME_LENGTH } from '../validate.js';
import { sqliteStoreMigrations } from './migrations_sqlite.js';
import { sqliteRevocationMigrations, type Revocation } from '../revocations.js';
import { prepareStatements, type ChannelRow, type SqliteStatements } from './statements_sqlite.js';

export interface SqliteStoreOptions {
  /** The database file (its folder is created), or ':memory:'. */
  readonly path: string;
  /**
   * How long a statement waits for another connection's write lock before failing with
   * STORE_UNAVAILABLE. better-sqlite3 waits synchronously, so keep it short. Default 5 s.
   */
  readonly busyTimeoutMs?: number;
  /** Requests per group-commit transaction. Default 1,000. */
  readonly maxBatch?: number;
  /** Appends waiting beyond which new ones are refused at once. Default 100,000. */
  readonly maxQueued?: number;
  /** Features' own tables, migrated after the store's. */
  readonly migrations?: readonly MigrationSet[];
}

/** Rows removed per statement by deleteUserMessages, each chunk its own transaction. */
const ERASE_CHUNK = 1000;

interface RoomRow {
  readonly name: string;
  readonly title: string | null;
  readonly created_by: string;
  readonly created_at: number;
}

interface UserRoomRow extends RoomRow, Omit<MessageRow, 'seq' | 'time' | 'data'> {
  readonly epoch: string | null;
  readonly top: number | null;
  readonly read_seq: number | null;
  readonly seq: number | null;
  readonly time: number | null;
  readonly data: string | null;
}

function roomOfRow(row: RoomRow): Room {
  return { name: row.name, createdBy: row.created_by, createdAt: row.created_at, ...(row.title !== null ? { title: row.title } : {}) };
}

const UNAVAILABLE_CODES = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|PROTOCOL|NOMEM|INTERRUPT)/;

/** SQLite failures as RelaisErrors: lock waits and I/O trouble are temporary. */
export function sqliteError(err: unknown): Error {
  if (err instanceof RelaisError || err instanceof SchemaError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && UNAVAILABLE_CODES.test(code)) {
    return new RelaisError('STORE_UNAVAILABLE', `SQLite store unavailable (${code}), retry later`, { cause: err });
  }
  if (err instanceof TypeError && /database connection is not open/.test(err.message)) {
    return new RelaisError('STORE_UNAVAILABLE', 'store closed', { cause: err });
  }
  return new RelaisError('INTERNAL', 'SQLite store failure', { cause: err });
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  private readonly db: Database;
  private prepared: SqliteStatements | undefined;
  private readonly group: GroupCommit<AppendRequest, AppendResult>;
  private readonly migrationSets: readonly MigrationSet[];
  private closed = false;

  constructor(options: SqliteStoreOptions) {
    this.migrationSets = [sqliteStoreMigrations, sqliteRevocationMigrations, ...(options.migrations ?? [])];
    checkMigrationSets(this.migrationSets);
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    try {
      this.db = new BetterSqlite3(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
      this.db.pragma('journal_mode = WAL');
      // In WAL mode NORMAL loses no committed transaction on a process crash, only on power
      // loss, and saves a disk flush per commit.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
    } catch (err) {
      throw sqliteError(err);
    }
    this.group = new GroupCommit((calls) => this.commit(calls), { maxBatch: options.maxBatch ?? 1000, maxQueued: options.maxQueued ?? 100_000 });
  }

  private get s(): SqliteStatements {
    if (this.closed) throw new RelaisError('STORE_UNAVAILABLE', 'store closed');
    // Prepared on first use, after migrate() created the tables.
    this.prepared ??= prepareStatements(this.db);
    return this.prepared;
  }

  /** Runs synchronous work as the async contract asks, failures mapped. */
  private run<T>(work: () => T): Promise<T> {
    try {
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(sqliteError(err));
    }
  }

  migrate(): Promise<MigrationReport> {
    return this.run(() => {
      if (this.closed) throw new RelaisError('STORE_UNAVAILABLE', 'store closed');
      // IMMEDIATE takes the write lock first: a second instance waits here (busy timeout)
      // and then finds the versions applied.
      this.db.exec('BEGIN IMMEDIATE');
      try {
        this.db.exec(
          'CREATE TABLE IF NOT EXISTS schema_migrations (component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, applied_at INTEGER NOT NULL, PRIMARY KEY (component, version))',
        );
        const current = this.db.prepare<[string], { version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations WHERE component = ?');
        const record = this.db.prepare<[string, number, string, number]>('INSERT INTO schema_migrations (component, version, name, applied_at) VALUES (?, ?, ?, ?)');
        // Every component is checked before any is changed: a newer database refuses whole.
        const plans = this.migrationSets.map((set) => ({ set, pending: pendingMigrations(set, current.get(set.component)?.version ?? 0) }));
        const applied: number[] = [];
        for (const { set, pending } of plans) {
          for (const migration of pending) {
            this.db.exec(migration.sql);
            record.run(set.component, migration.version, migration.name, Date.now());
            if (set.component === 'store') applied.push(migration.version);
          }
        }
        this.db.exec('COMMIT');
        return { applied, version: sqliteStoreMigrations.migrations.length };
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  async append(requests: readonly AppendRequest[]): Promise<readonly AppendResult[]> {
    // Checked before queueing: a bad call fails alone, never the batch it would have joined.
    requests.forEach(checkAppendRequest);
    if (requests.length === 0) return [];
    return this.group.submit(requests);
  }

  private commit(calls: readonly PendingCall<AppendRequest, AppendResult>[]): Promise<readonly (readonly AppendResult[])[]> {
    return this.run(() => {
      const s = this.s;
      const write = this.db.transaction(() => {
        const channels = new Map<string, { epoch: string; top: number; updatedAt: number; changed: boolean }>();
        // Keys stored earlier in this very batch, so that a repeat inside it is a duplicate too.
        const keyed = new Map<string, StoredMessage>();
        const results = calls.map((call) =>
          call.requests.map((request): AppendResult => {
            let channel = channels.get(request.channel);
            if (channel === undefined) {
              let row = s.channelRow.get(request.channel) as ChannelRow | undefined;
              if (row === undefined) {
                row = { epoch: newEpoch(), top: 0, updated_at: request.time };
                s.ensureChannel.run(request.channel, row.epoch, request.time, request.time);
              }
              channel = { epoch: row.epoch, top: row.top, updatedAt: row.updated_at, changed: false };
              channels.set(request.channel, channel);
            }
            const key = request.idempotencyKey === undefined ? undefined : `${request.channel}\u0000${request.idempotencyKey}`;
            if (key !== undefined) {
              const earlier = keyed.get(key);
              if (earlier) return { message: earlier, duplicate: true };
              const row = s.messageByKey.get(request.channel, request.idempotencyKey ?? '') as MessageRow | undefined;
              if (row) {
                const message = messageOfRow(request.channel, channel.epoch, row);
                keyed.set(key, message);
                return { message, duplicate: true };
              }
            }
            channel.top += 1;
            channel.changed = true;
            channel.updatedAt = Math.max(channel.updatedAt, request.time);
            const c = columnsOf(request);
            s.insertMessage.run(request.channel, channel.top, c.time, c.data, c.user_id, c.client_id, c.conn_info, c.chan_info, c.tags, c.temp_id, c.idem_key);
            const message = messageOfRequest(request, channel.top, channel.epoch);
            if (key !== undefined) keyed.set(key, message);
            return { message, duplicate: false };
          }),
        );
        for (const [name, channel] of channels) if (channel.changed) s.updateTop.run(channel.top, channel.updatedAt, name);
        return results;
      });
      return write.immediate();
    });
  }

  private positionOf(channel: string): StreamPosition {
    const row = this.s.channelRow.get(channel) as ChannelRow | undefined;
    return row ? { offset: row.top, epoch: row.epoch } : { offset: 0, epoch: '' };
  }

  private pageOf(channel: string, rows: readonly MessageRow[], position: StreamPosition): MessagePage {
    return { messages: rows.map((row) => messageOfRow(channel, position.epoch, row)), position };
  }

  range(channel: string, query: RangeQuery): Promise<MessagePage> {
    return this.run(() => {
      checkName('channel', channel);
      const after = query.after === undefined ? 0 : checkInteger('after', query.after);
      const limit = checkLimit('limit', query.limit);
      // One synchronous call: no write can come between the rows and the position.
      const position = this.positionOf(channel);
      return this.pageOf(channel, this.s.rangeAfter.all(channel, after, limit) as MessageRow[], position);
    });
  }

  page(channel: string, query: PageQuery): Promise<MessagePage> {
    return this.run(() => {
      checkName('channel', channel);
      const limit = checkLimit('limit', query.limit);
      const position = this.positionOf(channel);
      const rows =
        query.before === undefined
          ? (this.s.newest.all(channel, limit) as MessageRow[])
          : (this.s.pageBefore.all(channel, checkInteger('before', query.before), limit) as MessageRow[]);
      return this.pageOf(channel, rows, position);
    });
  }

  latest(channel: string, count: number): Promise<MessagePage> {
    return this.run(() => {
      checkName('channel', channel);
      const limit = checkLimit('count', count);
      const position = this.positionOf(channel);
      return this.pageOf(channel, (this.s.newest.all(channel, limit) as MessageRow[]).reverse(), position);
    });
  }

  position(channel: string): Promise<StreamPosition> {
    return this.run(() => this.positionOf(checkName('channel', channel)));
  }

  open(channel: string): Promise<StreamPosition> {
    return this.run(() => {
      checkName('channel', channel);
      const now = Date.now();
      this.s.ensureChannel.run(channel, newEpoch(), now, now);
      return this.positionOf(channel);
    });
  }

  clear(channel: string): Promise<StreamPosition> {
    return this.run(() => {
      checkName('channel', channel);
      const s = this.s;
      const epoch = newEpoch();
      this.db
        .transaction(() => {
          s.resetChannel.run(channel, epoch, Date.now(), Date.now());
          s.deleteChannelMessages.run(channel);
          s.deleteChannelReadPositions.run(channel);
        })
        .immediate();
      return { offset: 0, epoch };
    });
  }

  async deleteUserMessages(user: string): Promise<number> {
    await this.run(() => checkUser('user', user));
    let total = 0;
    for (;;) {
      const removed = await this.run(() => this.s.deleteUserChunk.run(user, ERASE_CHUNK).changes);
      total += removed;
      if (removed < ERASE_CHUNK) return total;
      // Appends and reads go on between chunks.
      await yieldToLoop();
    }
  }

  listChannels(after: string, limit: number): Promise<readonly ChannelSummary[]> {
    return this.run(() => {
      checkText('after', after, 0, MAX_NAME_LENGTH);
      const rows = this.s.listChannels.all(after, checkLimit('limit', limit)) as (ChannelRow & { name: string })[];
      return rows.map((row) => ({ channel: row.name, position: { offset: row.top, epoch: row.epoch }, updatedAt: row.updated_at }));
    });
  }

  trim(channel: string, rule: TrimRule): Promise<number> {
    return this.run(() => {
      checkName('channel', channel);
      const minTime = checkInteger('minTime', rule.minTime);
      const maxOffset = checkInteger('maxOffset', rule.maxOffset);
      const limit = checkLimit('limit', rule.limit);
      const s = this.s;
      return this.db
        .transaction(() => {
          const oldest = s.oldest.all(channel, limit) as { seq: number; time: number }[];
          let last = 0;
          let count = 0;
          for (const row of oldest) {
            if (row.seq > maxOffset && !(row.time < minTime)) break;
            last = row.seq;
            count++;
          }
          if (count > 0) s.deleteUpTo.run(channel, last);
          return count;
        })
        .immediate();
    });
  }

  forgetIdempotencyKeys(minTime: number, limit: number): Promise<number> {
    return this.run(() => this.s.forgetKeys.run(checkInteger('minTime', minTime), checkLimit('limit', limit)).changes);
  }

  createRoom(room: NewRoom): Promise<{ readonly room: Room; readonly created: boolean }> {
    return this.run(() => {
      checkName('room name', room.name);
      if (room.title !== undefined) checkText('room title', room.title, 0, MAX_NAME_LENGTH);
      checkUser('room createdBy', room.createdBy);
      checkInteger('room createdAt', room.createdAt);
      const created = this.s.insertRoom.run(room.name, room.title ?? null, room.createdBy, room.createdAt).changes === 1;
      return { room: roomOfRow(this.s.room.get(room.name) as RoomRow), created };
    });
  }

  getRoom(name: string): Promise<Room | undefined> {
    return this.run(() => {
      const row = this.s.room.get(checkName('room', name)) as RoomRow | undefined;
      return row ? roomOfRow(row) : undefined;
    });
  }

  deleteRoom(name: string): Promise<boolean> {
    return this.run(() => {
      checkName('room', name);
      const s = this.s;
      return this.db
        .transaction(() => {
          s.deleteChannelMessages.run(name);
          s.deleteChannelReadPositions.run(name);
          s.deleteChannel.run(name);
          // Members go with the room (ON DELETE CASCADE).
          return s.deleteRoom.run(name).changes === 1;
        })
        .immediate();
    });
  }

  addMember(room: string, user: string, joinedAt: number): Promise<boolean> {
    return this.run(() => {
      checkName('room', room);
      checkName('user', user);
      checkInteger('joinedAt', joinedAt);
      try {
        return this.s.addMember.run(room, user, joinedAt).changes === 1;
      } catch (err) {
        if ((err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_FOREIGNKEY') throw new RelaisError('ROOM_NOT_FOUND', `room "${room}" does not exist`);
        throw err;
      }
    });
  }

  removeMember(room: string, user: string): Promise<boolean> {
    return this.run(() => this.s.removeMember.run(checkName('room', room), checkName('user', user)).changes === 1);
  }

  isMember(room: string, user: string): Promise<boolean> {
    return this.run(() => this.s.isMember.get(checkName('room', room), checkName('user', user)) !== undefined);
  }

  listMembers(room: string, after: string, limit: number): Promise<readonly RoomMember[]> {
    return this.run(() => {
      checkName('room', room);
      checkText('after', after, 0, MAX_NAME_LENGTH);
      const rows = this.s.listMembers.all(room, after, checkLimit('limit', limit)) as { user_id: string; joined_at: number }[];
      return rows.map((row) => ({ user: row.user_id, joinedAt: row.joined_at }));
    });
  }

  listUserRooms(user: string, limit: number): Promise<readonly UserRoom[]> {
    return this.run(() => {
      checkName('user', user);
      const rows = this.s.userRooms.all(user, checkLimit('limit', limit)) as UserRoomRow[];
      return rows.map((row): UserRoom => {
        const position = row.epoch === null ? { offset: 0, epoch: '' } : { offset: row.top ?? 0, epoch: row.epoch };
        const readOffset = row.read_seq ?? 0;
        const lastMessage =
          row.seq === null || row.time === null || row.data === null
            ? undefined
            : messageOfRow(row.name, position.epoch, { ...row, seq: row.seq, time: row.time, data: row.data });
        return {
          room: roomOfRow(row),
          position,
          readOffset,
          unread: Math.max(0, position.offset - readOffset),
          ...(lastMessage ? { lastMessage } : {}),
        };
      });
    });
  }

  setReadPosition(channel: string, user: string, offset: number): Promise<number> {
    return this.run(() => {
      checkName('channel', channel);
      checkName('user', user);
      checkInteger('offset', offset);
      const row = this.s.setReadPosition.get({ channel, user, offset, time: Date.now() }) as { seq: number };
      return row.seq;
    });
  }

  readState(channel: string, user: string): Promise<ReadState> {
    return this.run(() => {
      checkName('channel', channel);
      checkName('user', user);
      const position = this.positionOf(channel);
      const readOffset = (this.s.readPosition.get(channel, user) as { seq: number } | undefined)?.seq ?? 0;
      return { readOffset, position, unread: Math.max(0, position.offset - readOffset) };
    });
  }

  touchUser(user: string, time: number): Promise<void> {
    return this.run(() => {
      this.s.touchUser.run(checkName('user', user), checkInteger('time', time));
    });
  }

  lastSeen(user: string): Promise<number | undefined> {
    return this.run(() => (this.s.lastSeen.get(checkName('user', user)) as { last_seen: number } | undefined)?.last_seen);
  }

  lastSeenMany(users: readonly string[]): Promise<ReadonlyMap<string, number>> {
    return this.run(() => {
      checkLimit('number of users', users.length === 0 ? 1 : users.length);
      const seen = new Map<string, number>();
      for (const user of users) {
        const row = this.s.lastSeen.get(checkName('user', user)) as { last_seen: number } | undefined;
        if (row) seen.set(user, row.last_seen);
      }
      return seen;
    });
  }

  putRevocation(revocation: Revocation): Promise<void> {
    return this.run(() => {
      const r = checkRevocation(revocation);
      this.db
        .prepare('INSERT INTO revocations (kind, key, issued_before, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET issued_before = excluded.issued_before, expires_at = excluded.expires_at')
        .run(r.kind, r.key, r.issuedBefore, r.expiresAt);
    });
  }

  deleteRevocation(kind: Revocation['kind'], key: string): Promise<boolean> {
    return this.run(() => this.db.prepare('DELETE FROM revocations WHERE kind = ? AND key = ?').run(kind, checkName('key', key)).changes > 0);
  }

  listRevocations(now: number, limit: number): Promise<readonly Revocation[]> {
    return this.run(() => {
      checkInteger('now', now);
      this.db.prepare('DELETE FROM revocations WHERE expires_at > 0 AND expires_at <= ?').run(now);
      const rows = this.db
        .prepare<[number], { kind: Revocation['kind']; key: string; issued_before: number; expires_at: number }>(
          'SELECT kind, key, issued_before, expires_at FROM revocations ORDER BY kind, key LIMIT ?',
        )
        .all(checkLimit('limit', limit, 100_000));
      return rows.map((row) => ({ kind: row.kind, key: row.key, issuedBefore: row.issued_before, expiresAt: row.expires_at }));
    });
  }

  ping(): Promise<void> {
    return this.run(() => {
      if (this.closed) throw new RelaisError('STORE_UNAVAILABLE', 'store closed');
      // Not a prepared statement of the store's tables: readiness holds before migrate().
      this.db.prepare('SELECT 1').get();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.group.close();
    this.closed = true;
    this.db.close();
  }
}
