import type { Logger } from 'pino';
import type { ResolvedChannel } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';
import { toJsonText, type JsonText } from '../../core/json.js';
import type { Node } from '../../core/node.js';
import type { Room, RoomMember, Store, UserRoom } from '../../stores/store.js';
import type { MemberCache } from './member_cache.js';
import { checkUserId, dmMembers, qualifyRoom, type ChatNamespaces } from './names.js';

/** The bus topic of membership changes: every node drops what its cache knew of them. */
export const MEMBERS_TOPIC = 'chat.members';
/** Members read per page when a deleted room's members are told. */
const MEMBER_PAGE = 1000;
/** Store calls and control messages in flight at once for one request. */
const CONCURRENCY = 32;

export interface RoomsDeps {
  readonly node: Node;
  readonly store: Store;
  readonly cache: MemberCache;
  readonly namespaces: ChatNamespaces;
  readonly logger: Logger;
  /** A room's memberships changed (here or on another node), after the cache forgot them. */
  readonly onChanged?: (room: string) => void;
}

export interface CreateRoom {
  readonly room: ResolvedChannel;
  readonly title?: string;
  /** '' when the server API creates it without naming anyone. */
  readonly createdBy: string;
  /** Members added with it (the creator, when a user, is one already). */
  readonly members: readonly string[];
  /** A client creating a room: when one of that name exists and another user created it, ROOM_EXISTS and nothing added. */
  readonly exclusive?: boolean;
}

export interface CreatedRoom {
  readonly room: Room;
  readonly created: boolean;
  /** Members that were not members before. */
  readonly added: number;
}

/**
 * Rooms and their members, for the server API and the client rpc alike. Every change of a
 * membership reaches every node: its membership caches forget it (MEMBERS_TOPIC), and a
 * removed member's connections are unsubscribed from the room (a control `unsubscribe`).
 * Arguments are checked before anything is stored, so bad input stores nothing.
 */
export class Rooms {
  constructor(private readonly deps: RoomsDeps) {
    deps.node.onFeatureMessage(MEMBERS_TOPIC, (data) => this.receive(data));
  }

  /**
   * The channel of a room a caller named (`team` is `room:team`). CHANNEL_INVALID or
   * UNKNOWN_CHANNEL for a bad name, BAD_REQUEST for a channel that is not a room: its namespace
   * must be persistent with the `members` rule. Conversations pass only with `conversations`.
   */
  resolve(name: unknown, options: { conversations?: boolean } = {}): ResolvedChannel {
    if (typeof name !== 'string') throw new RelaisError('BAD_REQUEST', 'room must be a string');
    const channel = this.deps.node.channels.resolve(qualifyRoom(name, this.deps.namespaces.room));
    if (channel.namespace === this.deps.namespaces.dm) {
      if (!options.conversations) throw new RelaisError('BAD_REQUEST', `"${channel.name}" is a conversation: its members are its two users`);
      if (!dmMembers(channel.rest)) throw new RelaisError('CHANNEL_INVALID', `"${channel.name}" is not a conversation: expected ${this.deps.namespaces.dm}:<user>,<user>, sorted`);
      return channel;
    }
    if (!channel.options.persist || channel.options.allow_subscribe !== 'members') {
      throw new RelaisError('BAD_REQUEST', `"${channel.name}" is not a room: rooms are channels of a persistent namespace with the members rule (such as ${this.deps.namespaces.room}:<name>)`);
    }
    return channel;
  }

  /** Creates a room (idempotently: an existing one is kept as it is) and adds its members. */
  async create(input: CreateRoom): Promise<CreatedRoom> {
    const members = unique([...(input.createdBy !== '' ? [input.createdBy] : []), ...input.members.map((m, i) => checkUserId(`members[${i}]`, m))]);
    const { room, created } = await this.deps.store.createRoom({
      name: input.room.name,
      createdBy: input.createdBy,
      createdAt: Date.now(),
      ...(input.title !== undefined ? { title: input.title } : {}),
    });
    if (!created && input.exclusive && room.createdBy !== input.createdBy) throw new RelaisError('ROOM_EXISTS', `room "${room.name}" already exists`);
    const now = Date.now();
    const results = await inBatches(members, (user) => this.deps.store.addMember(room.name, user, now));
    await this.changed(room.name, members);
    return { room, created, added: results.filter(Boolean).length };
  }

  /** The room, or ROOM_NOT_FOUND. */
  async get(room: string): Promise<Room> {
    const found = await this.deps.store.getRoom(room);
    if (!found) throw new RelaisError('ROOM_NOT_FOUND', `no room "${room}"`);
    return found;
  }

  /**
   * Deletes a room with its members, read positions and messages; its members' connections are
   * unsubscribed from it on every node. ROOM_NOT_FOUND when there is no such room.
   */
  async delete(room: string): Promise<void> {
    await this.get(room);
    const members: string[] = [];
    for (let after = ''; ; ) {
      const page = await this.deps.store.listMembers(room, after, MEMBER_PAGE);
      members.push(...page.map((m) => m.user));
      if (page.length < MEMBER_PAGE) break;
      after = page[page.length - 1]?.user ?? after;
    }
    if (!(await this.deps.store.deleteRoom(room))) throw new RelaisError('ROOM_NOT_FOUND', `no room "${room}"`);
    await this.changed(room, undefined);
    await this.unsubscribe(room, members);
  }

  /** Adds a member; resolves false when already one. ROOM_NOT_FOUND for an unknown room. */
  async addMember(room: string, user: string): Promise<boolean> {
    checkUserId('user', user);
    const added = await this.deps.store.addMember(room, user, Date.now());
    await this.changed(room, [user]);
    return added;
  }

  /**
   * Removes a member and unsubscribes their connections from the room on every node; from the
   * moment this resolves, every node refuses them. Resolves false when not a member (the
   * unsubscribe is still sent, so a retry after a bus failure completes the removal).
   */
  async removeMember(room: string, user: string): Promise<boolean> {
    checkUserId('user', user);
    await this.get(room);
    const removed = await this.deps.store.removeMember(room, user);
    await this.changed(room, [user]);
    await this.unsubscribe(room, [user]);
    return removed;
  }

  /** Members ordered by id after `after`; ROOM_NOT_FOUND for an unknown room. */
  async members(room: string, after: string, limit: number): Promise<readonly RoomMember[]> {
    await this.get(room);
    return this.deps.store.listMembers(room, after, limit);
  }

  userRooms(user: string, limit: number): Promise<readonly UserRoom[]> {
    return this.deps.store.listUserRooms(user, limit);
  }

  /** Forgets cached answers here at once, then on every node (this one again, harmlessly). */
  private async changed(room: string, users: readonly string[] | undefined): Promise<void> {
    this.forget(room, users);
    await this.deps.node.control({ type: 'feature', topic: MEMBERS_TOPIC, data: toJsonText(users === undefined ? { room } : { room, users }) });
  }

  private async unsubscribe(room: string, users: readonly string[]): Promise<void> {
    await inBatches(users, (user) => this.deps.node.control({ type: 'unsubscribe', user, channel: room }));
  }

  private receive(data: JsonText): void {
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    const { room, users } = (typeof message === 'object' && message !== null ? message : {}) as { room?: unknown; users?: unknown };
    if (typeof room !== 'string') return;
    this.forget(room, Array.isArray(users) ? users.filter((u): u is string => typeof u === 'string') : undefined);
  }

  private forget(room: string, users: readonly string[] | undefined): void {
    if (users === undefined) this.deps.cache.invalidateRoom(room);
    else for (const user of users) this.deps.cache.invalidate(room, user);
    this.deps.onChanged?.(room);
  }
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/** Runs `work` over `items`, CONCURRENCY at a time; results in order. */
async function inBatches<T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  for (let i = 0; i < items.length; i += CONCURRENCY) results.push(...(await Promise.all(items.slice(i, i + CONCURRENCY).map(work))));
  return results;
}
