/**
 * Names of the chat: rooms, conversations of two users, status channels. Pure functions, no
 * configuration lookups: the callers resolve the names they build against the namespaces.
 */
import { RelaisError } from '../../core/errors.js';

/** The namespaces the chat works with (embedded defaults: `room`, `dm`, `status`, and `user` for personal channels). */
export interface ChatNamespaces {
  readonly room: string;
  readonly dm: string;
  readonly status: string;
  readonly personal: string;
}

/** The characters of a channel name (see ChannelResolver), and so of a user id the chat names channels after. */
const USER_ID = /^[A-Za-z0-9_.:@=,#+~/-]+$/;
/** Longest user id the chat accepts: two of them and a namespace fit in a channel name. */
export const MAX_USER_ID_LENGTH = 100;

/**
 * A room's channel from what a caller wrote: a name without a namespace is a room of the room
 * namespace (`team` is `room:team`); a name with one is taken as it is (`room:team`, or a room
 * of another `members` namespace). The caller resolves and checks the result.
 */
export function qualifyRoom(name: string, roomNamespace: string): string {
  return name.includes(':') ? name : `${roomNamespace}:${name}`;
}

/**
 * Checks a user id the chat names a channel after or stores as a member: 1 to 100 characters
 * of a channel name. Throws BAD_REQUEST naming `what`.
 */
export function checkUserId(what: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new RelaisError('BAD_REQUEST', `${what} must be a non-empty user id`);
  if (value.length > MAX_USER_ID_LENGTH) throw new RelaisError('BAD_REQUEST', `${what} is longer than ${MAX_USER_ID_LENGTH} characters`);
  if (!USER_ID.test(value)) throw new RelaisError('BAD_REQUEST', `${what} "${value}" may only use letters, digits and _ . : @ = , # + ~ / -`);
  return value;
}

/**
 * The conversation channel of two users: `<dm namespace>:<a>,<b>` with the ids sorted, so
 * both users name the same channel. A user may write to themself (`dm:alice,alice`). Throws
 * BAD_REQUEST for an id the chat cannot name a conversation after (a comma splits the name).
 */
export function dmChannel(dmNamespace: string, one: string, other: string): string {
  checkUserId('user', one);
  checkUserId('user', other);
  if (one.includes(',') || other.includes(',')) throw new RelaisError('BAD_REQUEST', 'user ids with a comma cannot have direct messages');
  const [a, b] = one <= other ? [one, other] : [other, one];
  return `${dmNamespace}:${a},${b}`;
}

/**
 * The two users of a conversation from the part of its channel name after the namespace
 * (`alice,bob`), or undefined when it is not one: two non-empty ids, sorted, one comma.
 */
export function dmMembers(rest: string): readonly [string, string] | undefined {
  const comma = rest.indexOf(',');
  if (comma <= 0 || comma !== rest.lastIndexOf(',') || comma === rest.length - 1) return undefined;
  const a = rest.slice(0, comma);
  const b = rest.slice(comma + 1);
  if (a > b || a.length > MAX_USER_ID_LENGTH || b.length > MAX_USER_ID_LENGTH) return undefined;
  return [a, b];
}

/** The channel a user's status is published on. */
export function statusChannel(statusNamespace: string, user: string): string {
  return `${statusNamespace}:${user}`;
}
