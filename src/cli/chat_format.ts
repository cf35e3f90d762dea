/** What `relais chat` reads (commands) and writes (display lines); no I/O here. */
import type { ClientInfo } from 'centrifuge';
import { isChatMessage } from '../../client/index.js';

export type ChatInput =
  | { readonly kind: 'join' | 'leave' | 'history' | 'who'; readonly room: string | undefined }
  | { readonly kind: 'quit' | 'help' | 'empty' }
  | { readonly kind: 'say'; readonly text: string }
  | { readonly kind: 'unknown'; readonly command: string };

export const HELP = [
  '* commands:',
  '*   /join <room>      join a room (it becomes the current room)',
  '*   /leave [room]     leave a room (default: the current one)',
  '*   /history [room]   the last 50 messages of a room, oldest first',
  '*   /who [room]       who is in a room',
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
