import type { Logger } from 'pino';
import type { ResolvedChannel } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';
import { toJsonText } from '../../core/json.js';
import type { Node } from '../../core/node.js';
import type { ReadState, Store, StoredMessage } from '../../stores/store.js';

/** What a user's other connections receive (an asynchronous `message` push) when the read position moves. */
export const READ_MESSAGE_TYPE = 'chat.read';

export interface UnreadPage {
  /** Oldest first. */
  readonly messages: readonly StoredMessage[];
  readonly state: ReadState;
  /** The `before` of the next page of older unread messages; absent when this page reached the read position. */
  readonly nextBefore?: number;
}

/**
 * Read positions (seed 004's acknowledgements, the way chat apps keep them): each member has a
 * last-read offset per room, set by their client and only ever moving forward. Unread counts
 * and the unread messages come from it, so a message not yet read shows as unread on every
 * device, after any reconnect, until one of them marks it read. Callers authorize.
 */
export class ReadPositions {
  constructor(
    private readonly node: Node,
    private readonly store: Store,
    private readonly logger: Logger,
  ) {}

  /**
   * Moves the user's read position (never backwards, never past the room's top) and tells
   * every connection of the user, on every node, with an asynchronous message
   * `{"type":"chat.read","room","read_offset","unread","offset","epoch"}`. The position is
   * stored before: when the push cannot go out (bus down) it is logged, and the other devices
   * read it from chat.rooms.
   */
  async markRead(user: string, channel: ResolvedChannel, offset: number): Promise<ReadState> {
    await this.store.setReadPosition(channel.name, user, offset);
    const state = await this.store.readState(channel.name, user);
    const data = toJsonText({
      type: READ_MESSAGE_TYPE,
      room: channel.name,
      read_offset: state.readOffset,
      unread: state.unread,
      offset: state.position.offset,
      epoch: state.position.epoch,
    });
    await this.node.control({ type: 'message', user, data }).catch((err: unknown) => this.logger.warn({ err, user, room: channel.name }, 'read position stored but not pushed to the other connections'));
    return state;
  }

  /**
   * The user's unread messages of a room, paging back from the newest (or from `before`) down
   * to the read position: each page oldest first, at most `limit`.
   */
  async unread(user: string, channel: ResolvedChannel, limit: number, before?: number): Promise<UnreadPage> {
    if (before !== undefined && (!Number.isSafeInteger(before) || before < 1)) throw new RelaisError('BAD_REQUEST', 'before must be a whole number from 1');
    const state = await this.store.readState(channel.name, user);
    if (state.unread === 0) return { messages: [], state };
    const page = await this.store.page(channel.name, { limit, ...(before !== undefined ? { before } : {}) });
    const messages = page.messages.filter((m) => m.offset > state.readOffset).reverse();
    const lowest = messages[0]?.offset;
    const more = lowest !== undefined && lowest > state.readOffset + 1 && page.messages.length === limit;
    return { messages, state, ...(more ? { nextBefore: lowest } : {}) };
  }
}
