/**
 * How the chat's records look in rpc replies and server API results: snake_case fields, as
 * the rest of the protocol, with stored JSON embedded verbatim.
 */
import type { z } from 'zod';
import { RelaisError } from '../../core/errors.js';
import type { JsonText } from '../../core/json.js';
import { RawJson, encodeClientInfo, toWireJson } from '../../protocol/json_codec.js';
import type { Room, RoomMember, StoredMessage, UserRoom } from '../../stores/store.js';

/** A stored message as a publication of the protocol, with its epoch and time. */
export function wireMessage(message: StoredMessage): Record<string, unknown> {
  return {
    offset: message.offset,
    epoch: message.epoch,
    data: new RawJson(message.data),
    ...(message.info ? { info: new RawJson(encodeClientInfo(message.info)) } : {}),
    ...(message.tags ? { tags: message.tags } : {}),
    time: message.time,
  };
}

export function wireRoom(room: Room): Record<string, unknown> {
  return {
    room: room.name,
    ...(room.title !== undefined ? { title: room.title } : {}),
    created_by: room.createdBy,
    created_at: room.createdAt,
  };
}

/** One of a user's rooms: the room, its position, the user's read position, unread count and last message. */
export function wireUserRoom(entry: UserRoom): Record<string, unknown> {
  return {
    ...wireRoom(entry.room),
    offset: entry.position.offset,
    epoch: entry.position.epoch,
    read_offset: entry.readOffset,
    unread: entry.unread,
    ...(entry.lastMessage ? { last_message: wireMessage(entry.lastMessage) } : {}),
  };
}

export function wireMember(member: RoomMember): Record<string, unknown> {
  return { user: member.user, joined_at: member.joinedAt };
}

/** A reply as JSON text, stored JSON embedded verbatim. */
export function wireJson(value: unknown): JsonText {
  return toWireJson(value) as JsonText;
}

/** Parses a method's params with its schema; BAD_REQUEST naming each bad field. */
export function parseParams<S extends z.ZodType>(method: string, schema: S, params: unknown): z.infer<S> {
  const result = schema.safeParse(params ?? {});
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ');
    throw new RelaisError('BAD_REQUEST', `${method}: ${detail}`);
  }
  return result.data;
}

/** The params of an rpc call, sent as JSON text. */
export function parseRpcData<S extends z.ZodType>(method: string, schema: S, data: JsonText): z.infer<S> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (err) {
    throw new RelaisError('BAD_REQUEST', `${method}: data is not valid JSON`, { cause: err });
  }
  return parseParams(method, schema, parsed);
}
