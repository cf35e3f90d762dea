/** What `relais chat` reads (commands) and writes (display lines); no I/O here. */
import type { ClientInfo } from 'centrifuge';
import { isChatMessage } from '../../client/index.js';

export type ChatInput =
  | { readonly kind: 'join' | 'leave' | 'history' | 'who'; readonly room: string | undefined }
  | { readonly kind: 'create'; readonly room: string | undefined; readonly title: string | undefined }
  | { readonly kind: 'invite'; readonly user: string | undefined; readonly room: string | undefined }
  | { readonly kind: 'dm'; readonly user: string | undefined }
  | { readonly kind: 'quit' | 'help' | 'empty' | 'rooms' }
  | { readonly kind: 'say'; readonly text: string }
  | { readonly kind: 'unknown'; readonly command: string };

export const HELP = [
  '* commands:',
  '*   /join <room>      join a room (it becomes the current room): an open room (general),',
  '*                     or a room with members (room:team) whose last 50 messages show on join',
  '*   /leave [room]     leave a room (default: the current one)',
  '*   /history [room]   50 messages before the earliest shown (the last 50 at first), oldest first',
  '*   /who [room]       who is in a room',
  '*   /create <name> [title]  create room:<name> with you as a member, and join it',
  '*   /invite <user> [room]   add a user to a room you are in (default: the current one)',
  '*   /rooms            your rooms and conversations, with unread counts',
  '*   /dm <user>        open your conversation with a user (it becomes the current room)',
  '*   /quit             leave the chat (Ctrl+C and Ctrl+D too)',
  '*   anything else is said in the current room; start with // to say a line beginning with /',
];

const ROOM_COMMANDS = new Set(['join', 'leave', 'history', 'who']);

export function parseInput(line: string): ChatInput {
  const trimmed = line.trim();
  if (trimmed === '') return { kind: 'empty' };
  if (trimmed.startsWith('//')) return { kind: 'say', text: line.replace(/^\s*\//, '') };
  if (!trimmed.startsWith('/')) return { kind: 'say', text: line };
  const [head = '', ...rest] = trimmed.slice(1).split(/\s+/);
  const command = head.toLowerCase();
  if (ROOM_COMMANDS.has(command)) {
    return { kind: command as 'join' | 'leave' | 'history' | 'who', room: rest.length > 0 ? rest.join(' ') : undefined };
  }
  if (command === 'create') return { kind: 'create', room: rest[0], title: rest.length > 1 ? rest.slice(1).join(' ') : undefined };
  if (command === 'invite') return { kind: 'invite', user: rest[0], room: rest.length > 1 ? rest.slice(1).join(' ') : undefined };
  if (command === 'dm') return { kind: 'dm', user: rest.length > 0 ? rest.join(' ') : undefined };
  if (command === 'rooms') return { kind: 'rooms' };
  if (command === 'quit' || command === 'exit') return { kind: 'quit' };
  if (command === 'help' || command === '?') return { kind: 'help' };
  return { kind: 'unknown', command: `/${head}` };
}

/** The text of a publication: a chat message's text, or the data as JSON for anything else. */
export function messageText(data: unknown): string {
  return isChatMessage(data) ? data.text : JSON.stringify(data);
}

/** The sender: the publication's authenticated user; the server API publishes without one. */
export function senderOf(info: ClientInfo | undefined): string {
  if (info === undefined) return '(server)';
  return info.user === '' ? '(anonymous)' : info.user;
}

/** `[<offset>] <user>: <text>`, prefixed with `[<room>] ` when several rooms are joined. */
export function formatMessage(message: { room: string; offset: number | undefined; sender: string; text: string }, multiRoom: boolean): string {
  const line = `[${message.offset ?? '-'}] ${message.sender}: ${message.text}`;
  return multiRoom ? `[${message.room}] ${line}` : line;
}

/** `* in <room>: alice, bob (2 connections)`: users once each, sorted. */
export function formatPresence(room: string, users: readonly string[]): string {
  if (users.length === 0) return `* nobody in ${room}`;
  const unique = [...new Set(users.map((u) => (u === '' ? '(anonymous)' : u)))].sort();
  const extra = users.length > unique.length ? ` (${users.length} connections)` : '';
  return `* in ${room}: ${unique.join(', ')}${extra}`;
}

/** One of the user's rooms as `chat.rooms` answers it (the fields /rooms shows). */
export interface RoomListEntry {
  readonly room: string;
  readonly title?: string;
  readonly unread: number;
  readonly last_message?: { readonly offset: number; readonly data: unknown; readonly info?: ClientInfo };
}

/**
 * `*   room:team (Team): 3 unread; last [5] alice: hi` per room; a conversation shows as
 * `@<other user>` (`me` names the user it is shown to).
 */
export function formatRooms(rooms: readonly RoomListEntry[], me: string | undefined): string[] {
  if (rooms.length === 0) return ['* no rooms yet: /create <name>, or /dm <user>'];
  return [
    '* your rooms:',
    ...rooms.map((r) => {
      const name = conversationName(r.room, me) ?? r.room;
      const title = r.title !== undefined && r.title !== '' ? ` (${r.title})` : '';
      const unread = r.unread === 0 ? 'no unread' : `${r.unread} unread`;
      const last = r.last_message ? `; last [${r.last_message.offset}] ${senderOf(r.last_message.info)}: ${messageText(r.last_message.data)}` : '';
      return `*   ${name}${title}: ${unread}${last}`;
    }),
  ];
}

/** `@bob` for `dm:alice,bob` shown to alice; undefined for a channel that is not a conversation. */
export function conversationName(channel: string, me: string | undefined): string | undefined {
  const match = /^dm:([^,]+),([^,]+)$/.exec(channel);
  if (!match) return undefined;
  const [, a = '', b = ''] = match;
  return `@${a === me ? b : b === me ? a : `${a},${b}`}`;
}
