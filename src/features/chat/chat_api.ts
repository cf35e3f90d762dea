import { z } from 'zod';
import type { ServerApi } from '../../server/api.js';
import { checkUserId } from './names.js';
import type { ChatServices } from './services.js';
import { parseParams, wireMember, wireRoom, wireUserRoom } from './wire.js';

const name = z.string().min(1).max(255);
const room = z.object({ room: name }).strict();
const member = z.object({ room: name, user: name }).strict();

const schemas = {
  room_create: z
    .object({ room: name, title: z.string().max(200).optional(), created_by: z.string().max(255).optional(), members: z.array(name).max(1000).optional() })
    .strict(),
  room_delete: room,
  room_member_add: member,
  room_member_remove: member,
  room_members: z.object({ room: name, after: z.string().max(255).optional(), limit: z.number().int().min(1).max(10_000).optional() }).strict(),
  user_rooms: z.object({ user: name, limit: z.number().int().min(1).max(10_000).optional() }).strict(),
  user_status: z.object({ users: z.array(name).min(1).max(1000) }).strict(),
  user_messages_delete: z.object({ user: z.string().min(1).max(1024) }).strict(),
} as const;

/**
 * The chat's server API methods (`POST /api/<method>`, the API key's holder is the admin):
 * rooms and members, a user's rooms, statuses, and erasing a user's messages. Shapes in
 * docs/chat.md; errors as every API method (docs/errors.md).
 */
export function registerChatApi(api: ServerApi, chat: ChatServices): void {
  const { rooms } = chat;
  api.register('room_create', async (params) => {
    const p = parseParams('room_create', schemas.room_create, params);
    const created = await rooms.create({
      room: rooms.resolve(p.room),
      createdBy: p.created_by === undefined || p.created_by === '' ? '' : checkUserId('created_by', p.created_by),
      members: p.members ?? [],
      ...(p.title !== undefined ? { title: p.title } : {}),
    });
    return { room: wireRoom(created.room), created: created.created, added: created.added };
  });
  api.register('room_delete', async (params) => {
    const p = parseParams('room_delete', schemas.room_delete, params);
    await rooms.delete(rooms.resolve(p.room, { conversations: true }).name);
    return {};
  });
  api.register('room_member_add', async (params) => {
    const p = parseParams('room_member_add', schemas.room_member_add, params);
    return { added: await rooms.addMember(rooms.resolve(p.room).name, p.user) };
  });
  api.register('room_member_remove', async (params) => {
    const p = parseParams('room_member_remove', schemas.room_member_remove, params);
    return { removed: await rooms.removeMember(rooms.resolve(p.room).name, p.user) };
  });
  api.register('room_members', async (params) => {
    const p = parseParams('room_members', schemas.room_members, params);
    const limit = p.limit ?? 100;
    const members = await rooms.members(rooms.resolve(p.room, { conversations: true }).name, p.after ?? '', limit);
    const last = members.length === limit ? members[members.length - 1]?.user : undefined;
    return { members: members.map(wireMember), ...(last !== undefined ? { next_after: last } : {}) };
  });
  api.register('user_rooms', async (params) => {
    const p = parseParams('user_rooms', schemas.user_rooms, params);
    return { rooms: (await rooms.userRooms(p.user, p.limit ?? 100)).map(wireUserRoom) };
  });
  api.register('user_status', async (params) => {
    const p = parseParams('user_status', schemas.user_status, params);
    const found = await chat.status.statuses(p.users.map((u, i) => checkUserId(`users[${i}]`, u)));
    return { users: found.map((s) => ({ user: s.user, status: s.status, ...(s.lastSeen !== undefined ? { last_seen: s.lastSeen } : {}) })) };
  });
  api.register('user_messages_delete', async (params) => {
    const p = parseParams('user_messages_delete', schemas.user_messages_delete, params);
    return { deleted: await chat.store.deleteUserMessages(p.user) };
  });
}
