import type { Logger } from 'pino';
import type { ResolvedChannel } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';
import type { JsonText } from '../../core/json.js';
import type { Node, PublishInput, PublishNext, PublishStep } from '../../core/node.js';
import type { StreamPosition } from '../../core/publication.js';
import type { Store } from '../../stores/store.js';
import { dmChannel, dmMembers, type ChatNamespaces } from './names.js';

/** Conversations a node knows to exist with both members, so that later messages skip the store calls. */
const KNOWN_CONVERSATIONS = 10_000;

export interface DirectMessagesDeps {
  readonly node: Node;
  readonly store: Store;
  readonly namespaces: ChatNamespaces;
  readonly logger: Logger;
}

/** Where a direct message was stored. */
export interface SentDirectMessage extends StreamPosition {
  readonly channel: string;
}

/**
 * Direct messages: the publish step of the personal namespace (`@alice`, `user:alice`) and of
 * the conversation namespace (`dm:alice,bob`).
 *
 * A message a user sends to `@alice` (or into their conversation) is stored in the
 * conversation of the two (`dm:<a>,<b>`, ids sorted; the conversation is a room whose two
 * members are added with its first message, so it appears in both users' room lists), then
 * a copy goes to each of the two users' personal channels, carrying the data and sender as
 * sent (what apps that only follow `user:<id>` have always received) and, as tags, where the
 * message is stored (`dm_channel`, `dm_offset`, `dm_epoch`, and `temp_id` of an optimistic
 * send). The sender is the publishing connection's user, never a field of the data.
 *
 * A publish to a personal channel without a sender (the server API's notifications) is not a
 * direct message: it goes to that channel as before.
 */
export class DirectMessages implements PublishStep {
  private readonly known = new Set<string>();

  constructor(private readonly deps: DirectMessagesDeps) {}

  publish(channel: ResolvedChannel, data: JsonText, input: PublishInput, next: PublishNext): Promise<StreamPosition> {
    const namespaces = this.deps.namespaces;
    if (channel.namespace === namespaces.dm) return this.store(channel, data, input, next);
    const sender = input.info?.user;
    if (sender === undefined || sender === '') return next(channel, data, input);
    const conversation = this.deps.node.channels.resolve(dmChannel(namespaces.dm, sender, channel.rest));
    return this.store(conversation, data, input, next);
  }

  /** A room of this conversation was deleted or changed elsewhere: make sure of it again at the next message. */
  forget(room: string): void {
    this.known.delete(room);
  }

  /** Stores a message in a conversation, then sends the two copies; resolves with its stored position. */
  async store(conversation: ResolvedChannel, data: JsonText, input: PublishInput, next: PublishNext): Promise<SentDirectMessage> {
    const members = dmMembers(conversation.rest);
    if (!members) throw new RelaisError('CHANNEL_INVALID', `"${conversation.name}" is not a conversation: expected ${this.deps.namespaces.dm}:<user>,<user>, sorted`);
    const users = members[0] === members[1] ? [members[0]] : [members[0], members[1]];
    // Both personal channels must exist before anything is stored.
    const personal = users.map((user) => this.deps.node.channels.resolve(`${this.deps.namespaces.personal}:${user}`));
    await this.ensureConversation(conversation.name, users, input.info?.user ?? '');
    const position = await next(conversation, data, input);
    const tags: Record<string, string> = {
      ...input.tags,
      dm_channel: conversation.name,
      dm_offset: String(position.offset),
      dm_epoch: position.epoch,
      ...(input.tempId !== undefined ? { temp_id: input.tempId } : {}),
    };
    // Keyed by the stored message: a retried send (stored once) is copied once too.
    const idempotencyKey = `dm:${conversation.name}:${position.epoch}:${position.offset}`;
    const copies = await Promise.allSettled(
      personal.map((channel) => next(channel, data, { ...(input.info ? { info: input.info } : {}), tags, idempotencyKey })),
    );
    for (const copy of copies) {
      // Stored, so acknowledged: the conversation has it for every device that pages it.
      if (copy.status === 'rejected') this.deps.logger.warn({ err: copy.reason, channel: conversation.name, offset: position.offset }, 'direct message stored but not copied to a personal channel');
    }
    return { channel: conversation.name, offset: position.offset, epoch: position.epoch };
  }

  private async ensureConversation(name: string, users: readonly string[], sender: string): Promise<void> {
    if (this.known.has(name)) return;
    await this.deps.store.createRoom({ name, createdBy: sender, createdAt: Date.now() });
    const now = Date.now();
    await Promise.all(users.map((user) => this.deps.store.addMember(name, user, now)));
    if (this.known.size >= KNOWN_CONVERSATIONS) this.known.clear();
    this.known.add(name);
  }
}
