import { z } from 'zod';
import type { ResolvedChannel } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';
import { toJsonText, type JsonText } from '../../core/json.js';
import type { ClientInfo } from '../../core/publication.js';
import type { CallerContext } from '../../core/rpc.js';
import type { RpcMethods } from '../../core/rpc_router.js';
import { checkUserId } from './names.js';
import type { ChatServices } from './services.js';
import { parseRpcData, wireJson, wireMember, wireMessage, wireRoom, wireUserRoom } from './wire.js';

const name = z.string().min(1).max(255);
const tempId = z.string().min(1).max(128);
const present = z.unknown().refine((v) => v !== undefined, 'required');
const offset = z.number().int().min(0);

const schemas = {
  'chat.create': z.object({ room: name, title: z.string().max(200).optional(), members: z.array(name).max(100).optional() }).strict(),
  'chat.invite': z.object({ room: name, user: name }).strict(),
  'chat.leave': z.object({ room: name }).strict(),
  'chat.rooms': z.object({ limit: z.number().int().min(1).max(1000).optional() }).strict(),
  'chat.members': z.object({ room: name, after: z.string().max(255).optional(), limit: z.number().int().min(1).max(1000).optional() }).strict(),
  'chat.send': z.object({ channel: name, data: present, temp_id: tempId.optional() }).strict(),
  'chat.dm': z.object({ to: name, data: present, temp_id: tempId.optional() }).strict(),
  'chat.read': z.object({ room: name, offset }).strict(),
  'chat.unread': z.object({ room: name, limit: z.number().int().min(1).max(200).optional(), before: z.number().int().min(1).optional() }).strict(),
  'chat.status': z.object({ users: z.array(name).min(1).max(100) }).strict(),
} as const;

type Method = keyof typeof schemas;

function isMethod(method: string): method is Method {
  return Object.hasOwn(schemas, method);
}

/**
 * The chat's client rpc methods (`chat.*`), for what a user may do themself: create rooms and
 * invite to rooms they are in, leave, list their rooms and the members of theirs, send
 * (optimistically) and send to a user, mark read, page unread messages, read statuses. The
 * caller is the connection's user; anonymous connections are refused. docs/chat.md shows each.
 */
export class ChatRpc implements RpcMethods {
  constructor(private readonly chat: ChatServices) {}

  async call(caller: CallerContext, method: string, data: JsonText): Promise<JsonText | undefined> {
    if (!isMethod(method)) throw new RelaisError('METHOD_NOT_FOUND', `no rpc method "${method}"`);
    if (caller.user === '') throw new RelaisError('FORBIDDEN', 'the chat needs an authenticated user');
    return wireJson(await this.run(caller, method, data));
  }

  private async run(caller: CallerContext, method: Method, data: JsonText): Promise<unknown> {
    const { rooms, reads, messages, status } = this.chat;
    const user = caller.user;
    switch (method) {
      case 'chat.create': {
        const p = parseRpcData(method, schemas[method], data);
        const room = rooms.resolve(p.room);
        const created = await rooms.create({ room, createdBy: user, members: p.members ?? [], exclusive: true, ...(p.title !== undefined ? { title: p.title } : {}) });
        return { room: wireRoom(created.room), created: created.created };
      }
      case 'chat.invite': {
        const p = parseRpcData(method, schemas[method], data);
        const room = await this.memberRoom(user, p.room, false);
        return { added: await rooms.addMember(room.name, checkUserId('user', p.user)) };
      }
      case 'chat.leave': {
        const p = parseRpcData(method, schemas[method], data);
        const room = rooms.resolve(p.room);
        return { removed: await rooms.removeMember(room.name, user) };
      }
      case 'chat.rooms': {
        const p = parseRpcData(method, schemas[method], data);
        return { rooms: (await rooms.userRooms(user, p.limit ?? 100)).map(wireUserRoom) };
      }
      case 'chat.members': {
        const p = parseRpcData(method, schemas[method], data);
        const room = await this.memberRoom(user, p.room, true);
        const limit = p.limit ?? 100;
        const members = await rooms.members(room.name, p.after ?? '', limit);
        const last = members.length === limit ? members[members.length - 1]?.user : undefined;
        return { members: members.map(wireMember), ...(last !== undefined ? { next_after: last } : {}) };
      }
      case 'chat.send': {
        const p = parseRpcData(method, schemas[method], data);
        const sent = await messages.send(senderOf(caller), p.channel, toJsonText(p.data), p.temp_id);
        return { ...sent, ...(p.temp_id !== undefined ? { temp_id: p.temp_id } : {}) };
      }
      case 'chat.dm': {
        const p = parseRpcData(method, schemas[method], data);
        const sent = await messages.send(senderOf(caller), `@${checkUserId('to', p.to)}`, toJsonText(p.data), p.temp_id);
        return { ...sent, ...(p.temp_id !== undefined ? { temp_id: p.temp_id } : {}) };
      }
      case 'chat.read': {
        const p = parseRpcData(method, schemas[method], data);
        const room = await this.memberRoom(user, p.room, true);
        const state = await reads.markRead(user, room, p.offset);
        return { room: room.name, read_offset: state.readOffset, unread: state.unread, offset: state.position.offset, epoch: state.position.epoch };
      }
      case 'chat.unread': {
        const p = parseRpcData(method, schemas[method], data);
        const room = await this.memberRoom(user, p.room, true);
        const page = await reads.unread(user, room, p.limit ?? 50, p.before);
        return {
          room: room.name,
          messages: page.messages.map(wireMessage),
          read_offset: page.state.readOffset,
          unread: page.state.unread,
          offset: page.state.position.offset,
          epoch: page.state.position.epoch,
          ...(page.nextBefore !== undefined ? { next_before: page.nextBefore } : {}),
        };
      }
      case 'chat.status': {
        const p = parseRpcData(method, schemas[method], data);
        const found = await status.statuses(p.users.map((u, i) => checkUserId(`users[${i}]`, u)));
        return { users: found.map((s) => ({ user: s.user, status: s.status, ...(s.lastSeen !== undefined ? { last_seen: s.lastSeen } : {}) })) };
      }
    }
  }

  /**
   * A room the caller is a member of (a conversation of theirs with `conversations`):
   * ROOM_NOT_FOUND when there is no such room, FORBIDDEN when they are not in it.
   */
  private async memberRoom(user: string, name: string, conversations: boolean): Promise<ResolvedChannel> {
    const room = this.chat.rooms.resolve(name, { conversations });
    // A conversation is its two users' from its name, even before its first message.
    if (room.namespace !== this.chat.namespaces.dm) await this.chat.rooms.get(room.name);
    await this.chat.node.authorize('subscribe', user, room);
    return room;
  }
}

function senderOf(caller: CallerContext): ClientInfo {
  return caller.info ?? { user: caller.user, client: caller.client };
}
