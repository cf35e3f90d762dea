import type { JsonText } from '../core/json.js';
import type { ClientInfo, Publication, StreamPosition } from '../core/publication.js';
import type { Revocation } from './revocations.js';

/**
 * One message to store in a persistent channel. Validated before any of its batch touches
 * the database: a bad request rejects alone with BAD_REQUEST (see `Store.append`).
 */
export interface AppendRequest {
  /** Channel name, 1 to 1024 characters. */
  readonly channel: string;
  /** The publication data, a JSON document kept as text and returned byte for byte. */
  readonly data: JsonText;
  /** Publisher, taken by the caller from the authenticated connection. */
  readonly info?: ClientInfo;
  readonly tags?: Readonly<Record<string, string>>;
  /**
   * Unique per channel while it is remembered: at least the sweeper's `idempotencyTtlMs`
   * (config `idempotency_ttl`), until the first sweep after that. A second append with the
   * same key stores nothing and resolves with the first message, `duplicate: true`. Up to 256 characters. A caller that wants a client's
   * retried `tempId` stored once passes a key derived from it (user and tempId).
   */
  readonly idempotencyKey?: string;
  /** The client's temporary id of an optimistic send: stored and returned, never interpreted. Up to 256 characters. */
  readonly tempId?: string;
  /** Publication time, Unix milliseconds (an integer, 0 or more). TTL retention reads it. */
  readonly time: number;
}

/** A message as the store keeps it. */
export interface StoredMessage {
  readonly channel: string;
  /** Durable offset: per channel and epoch, contiguous from 1, assigned by the store. */
  readonly offset: number;
  /** The channel's epoch when the message was stored. */
  readonly epoch: string;
  readonly data: JsonText;
  readonly info?: ClientInfo;
  readonly tags?: Readonly<Record<string, string>>;
  readonly idempotencyKey?: string;
  readonly tempId?: string;
  /** Unix milliseconds, as appended. */
  readonly time: number;
}

export interface AppendResult {
  readonly message: StoredMessage;
  /** True when the idempotency key was already stored: `message` is the first one, nothing was stored now. */
  readonly duplicate: boolean;
}

/** A slice of a channel's messages and the channel's position, read in one snapshot. */
export interface MessagePage {
  readonly messages: readonly StoredMessage[];
  /** The channel's top offset and epoch at the time of the read ({0, ''} for a channel never written). */
  readonly position: StreamPosition;
}

export interface RangeQuery {
  /** Messages with an offset above this one (0 or absent: from the oldest kept). */
  readonly after?: number;
  /** Most messages returned, 1 to 10,000. */
  readonly limit: number;
}

export interface PageQuery {
  /** Messages with an offset below this one (absent: from the newest). The cursor of the previous page. */
  readonly before?: number;
  /** Most messages returned, 1 to 10,000. */
  readonly limit: number;
}

/** A channel's row, for the sweeper. */
export interface ChannelSummary {
  readonly channel: string;
  readonly position: StreamPosition;
  /** Time of the last append, Unix ms. */
  readonly updatedAt: number;
}

/** What to remove from one channel: messages older than `minTime` and those at or below `maxOffset`. */
export interface TrimRule {
  /** Remove messages whose time is below this (Unix ms); 0: no age limit. */
  readonly minTime: number;
  /** Remove messages with an offset at or below this; 0: no size limit. */
  readonly maxOffset: number;
  /** Most messages removed by this call. */
  readonly limit: number;
}

export interface Room {
  /** The room's name, which is also its channel's name. */
  readonly name: string;
  readonly title?: string;
  readonly createdBy: string;
  /** Unix ms. */
  readonly createdAt: number;
}

export interface NewRoom {
  readonly name: string;
  readonly title?: string;
  readonly createdBy: string;
  readonly createdAt: number;
}

export interface RoomMember {
  readonly user: string;
  /** Unix ms. */
  readonly joinedAt: number;
}

/** One of a user's rooms as a room list shows it. */
export interface UserRoom {
  readonly room: Room;
  /** The newest message still kept, if any. */
  readonly lastMessage?: StoredMessage;
  /** The room channel's position. */
  readonly position: StreamPosition;
  /** The user's read position in the room (0: nothing read). */
  readonly readOffset: number;
  /** `position.offset - readOffset`, never below 0. */
  readonly unread: number;
}

/** A user's read position in a channel, with the channel's position to count unread. */
export interface ReadState {
  readonly readOffset: number;
  readonly position: StreamPosition;
  readonly unread: number;
}

/**
 * Durable records of Relais: persistent channel messages, rooms and members, read positions,
 * users' last-seen times. Implementations: SQLite (embedded) and PostgreSQL; both pass
 * store.contract.ts.
 *
 * For a persistent channel the store is the sequencer: `append` assigns each message its
 * durable offset under the channel's epoch, the node broadcasts the stored message, and
 * recovery reads the store.
 *
 * Errors, for every method:
 * - STORE_UNAVAILABLE (temporary) when the database cannot be reached, a query runs past the
 *   query timeout, too many appends are waiting, or the store is closed. No call waits
 *   longer than the connection timeout plus the query timeouts of its statements (an append
 *   also waits for the batches ahead of it, each so bounded). Nothing the call was to write
 *   is acknowledged;
 *   a write may still have committed when the failure came after the commit was sent, so
 *   retrying an append with its idempotency key is the safe way.
 * - BAD_REQUEST for arguments out of their documented range (empty or over-long names, NUL
 *   characters or unpaired surrogates in strings, offsets or times that are not integers).
 * - ROOM_NOT_FOUND where a method names a room that does not exist.
 */
export interface Store {
  readonly kind: 'sqlite' | 'postgres';

  /**
   * Creates or upgrades the schema to this code's version. Safe when several instances run
   * it at once: one applies each migration, the others wait and find it applied. Rejects with
   * a clear message, changing nothing, when the database was migrated by a newer Relais.
   * Every other method expects it to have resolved once.
   */
  migrate(): Promise<MigrationReport>;

  /**
   * Stores messages with group commit: the requests of every call made while a commit is in
   * flight are written together in the next transaction (up to the batch bound; one call is
   * never split across transactions).
   *
   * Resolves with one result per request, in the order given. Per channel, offsets follow the
   * order in which requests were submitted on this process (calls in call order, requests of
   * one call in array order); across processes sharing a database, offsets of a channel are
   * still contiguous, never duplicated or skipped (the channel row is locked while offsets
   * are assigned). The first message of a channel creates its row and epoch.
   *
   * Atomic per transaction: when the transaction fails, every call in it rejects (temporary
   * error) and none of their messages is stored. A call whose own requests are invalid
   * rejects with BAD_REQUEST before anything is written, without failing the others.
   * An empty array resolves with an empty array.
   */
  append(requests: readonly AppendRequest[]): Promise<readonly AppendResult[]>;

  /** Messages after `query.after`, oldest first, at most `query.limit`. Offsets removed by retention or erasure are skipped. */
  range(channel: string, query: RangeQuery): Promise<MessagePage>;

  /**
   * Messages before `query.before`, newest first, at most `query.limit`: paging back through a
   * channel, the lowest offset returned being the next page's `before`. An empty page means
   * nothing older is kept.
   */
  page(channel: string, query: PageQuery): Promise<MessagePage>;

  /** The newest `count` messages (1 to 10,000), oldest first, as a client shows them on join. */
  latest(channel: string, count: number): Promise<MessagePage>;

  /** The channel's top offset and epoch; {0, ''} for a channel never written (or whose room was deleted). */
  position(channel: string): Promise<StreamPosition>;

  /**
   * The channel's position, giving a channel never written its row and epoch ({0, epoch}): a
   * subscriber of an empty channel is told the epoch its first message will have, as the
   * brokers do for an empty stream. Concurrent opens and appends agree on one epoch.
   */
  open(channel: string): Promise<StreamPosition>;

  /**
   * Removes every message of the channel and starts a new epoch: offsets start again from 1,
   * and the channel's read positions are reset to 0 in the same transaction. Resolves with
   * the new position ({0, newEpoch}). A channel never written gets a row and an epoch.
   */
  clear(channel: string): Promise<StreamPosition>;

  /**
   * Erases every message published by `user` (info.user) in every channel, for a
   * data-protection request. Offsets of the others do not change; the erased ones are skipped
   * by reads. Resolves with the number of messages erased. Runs in bounded chunks, each
   * committed on its own: a failure part-way leaves some erased, and a retry finishes.
   */
  deleteUserMessages(user: string): Promise<number>;

  /** Channels with a row, ordered by name, after `after` (exclusive), at most `limit`: the sweeper's cursor. */
  listChannels(after: string, limit: number): Promise<readonly ChannelSummary[]>;

  /**
   * Removes the oldest messages of a channel that fall under the rule, oldest first, stopping
   * at the first kept one: what stays is always a contiguous run of the newest offsets (a
   * message with an out-of-order older time stays until those before it go). At most
   * `rule.limit` removed. Resolves with the number removed.
   */
  trim(channel: string, rule: TrimRule): Promise<number>;

  /** Forgets idempotency keys of messages older than `minTime` (Unix ms), at most `limit`; resolves with the number forgotten. */
  forgetIdempotencyKeys(minTime: number, limit: number): Promise<number>;

  /**
   * Creates a room, idempotently: when a room of that name exists it is left as it is and
   * returned with `created: false`. Direct-message conversations are rooms too.
   */
  createRoom(room: NewRoom): Promise<{ readonly room: Room; readonly created: boolean }>;

  /** The room, or undefined. */
  getRoom(name: string): Promise<Room | undefined>;

  /**
   * Deletes a room with its members, its read positions, its messages and its channel row,
   * in one transaction (a later room of the same name starts a new epoch). Resolves with
   * whether the room existed.
   */
  deleteRoom(name: string): Promise<boolean>;

  /** Adds a member; resolves false when already one. ROOM_NOT_FOUND when the room does not exist (also when deleted concurrently). */
  addMember(room: string, user: string, joinedAt: number): Promise<boolean>;

  /** Removes a member; resolves false when not one. */
  removeMember(room: string, user: string): Promise<boolean>;

  /**
   * Whether `user` is a member of `room` (false for an unknown room): one primary-key lookup.
   * Its answer changes only through addMember, removeMember and deleteRoom (on any instance),
   * so a cache above it keyed by (room, user) stays right when those calls invalidate it.
   */
  isMember(room: string, user: string): Promise<boolean>;

  /** Members ordered by user id, after `after` (exclusive), at most `limit` (1 to 10,000). Empty for an unknown room. */
  listMembers(room: string, after: string, limit: number): Promise<readonly RoomMember[]>;

  /**
   * The rooms `user` is a member of (direct-message conversations included), the most
   * recently active first (last append, else creation), at most `limit` (1 to 10,000), each
   * with its newest kept message, position, the user's read position and unread count.
   */
  listUserRooms(user: string, limit: number): Promise<readonly UserRoom[]>;

  /**
   * Moves the user's read position in a channel forward: it never goes backwards and never
   * past the channel's top (a larger offset is clamped to the top). Resolves with the stored
   * value. Needs no membership (the caller authorizes).
   */
  setReadPosition(channel: string, user: string, offset: number): Promise<number>;

  /** The user's read position in the channel (0 when never set), with the channel's position and unread count. */
  readState(channel: string, user: string): Promise<ReadState>;

  /** Records that the user was seen at `time` (Unix ms); an earlier time than the stored one changes nothing. */
  touchUser(user: string, time: number): Promise<void>;

  /** When the user was last seen (Unix ms), or undefined when never. */
  lastSeen(user: string): Promise<number | undefined>;

  /** Last-seen times of several users (up to 10,000); users never seen are absent from the map. */
  lastSeenMany(users: readonly string[]): Promise<ReadonlyMap<string, number>>;

  /**
   * Stores a revocation (a blocked user, a revoked token), replacing the entry of the same
   * kind and key: the later call wins.
   */
  putRevocation(revocation: Revocation): Promise<void>;

  /** Removes a revocation; resolves with whether there was one. */
  deleteRevocation(kind: Revocation['kind'], key: string): Promise<boolean>;

  /**
   * The revocations not expired at `now` (Unix ms), at most `limit` (1 to 100,000), and
   * removes the expired ones. Every instance loads them at start-up.
   */
  listRevocations(now: number, limit: number): Promise<readonly Revocation[]>;

  /** Checks the database answers within the timeouts (readiness). Rejects with STORE_UNAVAILABLE. */
  ping(): Promise<void>;

  /**
   * Waits for the commit in flight, rejects appends still queued (STORE_UNAVAILABLE) and
   * releases connections. Later calls reject with STORE_UNAVAILABLE. Idempotent.
   */
  close(): Promise<void>;
}

export interface MigrationReport {
  /** Versions applied by this call, oldest first (empty when the schema was up to date). */
  readonly applied: readonly number[];
  /** The schema's version afterwards. */
  readonly version: number;
}

/** The publication a node broadcasts for a stored message. */
export function publicationOf(message: StoredMessage): Publication {
  return {
    offset: message.offset,
    epoch: message.epoch,
    data: message.data,
    time: message.time,
    ...(message.info ? { info: message.info } : {}),
    ...(message.tags ? { tags: message.tags } : {}),
  };
}

/** What the stores log through: the composition root passes its pino logger. */
export interface StoreLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentStoreLogger: StoreLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
