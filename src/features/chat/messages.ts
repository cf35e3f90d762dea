import { createHash } from 'node:crypto';
import type { ResolvedChannel } from '../../core/channel.js';
import type { JsonText } from '../../core/json.js';
import type { Node, PublishInput } from '../../core/node.js';
import type { ClientInfo } from '../../core/publication.js';
import { dmChannel, type ChatNamespaces } from './names.js';

/** Where a chat message went and its position there. */
export interface SentMessage {
  readonly channel: string;
  readonly offset: number;
  readonly epoch: string;
}

/**
 * The idempotency key of a client's optimistic send: the same temporary id from the same user
 * in the same channel is stored (and delivered) once, whichever node the retry reaches. A
 * hash, so that any user id and temporary id fit the store's 256 characters.
 */
export function tempIdKey(user: string, tempId: string): string {
  return `temp:${createHash('sha256').update(user).update('\u0000').update(tempId).digest('hex')}`;
}

/**
 * Sending chat messages for a connected user (rpc `chat.send`, `chat.dm`): the user's
 * connection is the publisher, its temporary id rides with the message, and a message to a
 * user (`@alice`, `user:alice`) goes to the conversation of the two (see DirectMessages).
 */
export class ChatMessages {
  constructor(
    private readonly node: Node,
    private readonly namespaces: ChatNamespaces,
    /** Whether messages to a user go to their conversation (the dm namespace is configured for it). */
    private readonly conversations: boolean,
  ) {}

  /**
   * Publishes `data` as `sender` into `target` (a room, a conversation, `@user`, any channel the
   * sender may publish to), after the namespace's publish rule. With `tempId` the message is
   * stored once per (sender, tempId) and carries tag `temp_id`.
   */
  async send(sender: ClientInfo, target: string, data: JsonText, tempId: string | undefined): Promise<SentMessage> {
    let channel: ResolvedChannel = this.node.channels.resolvePublishTarget(target);
    await this.node.authorize('publish', sender.user, channel);
    if (this.conversations && channel.namespace === this.namespaces.personal) {
      // The conversation, named in the reply; the publish step copies it to both users.
      channel = this.node.channels.resolve(dmChannel(this.namespaces.dm, sender.user, channel.rest));
    }
    const input: PublishInput = {
      info: sender,
      ...(tempId !== undefined ? { tempId, idempotencyKey: tempIdKey(sender.user, tempId) } : {}),
    };
    const position = await this.node.publish(channel, data, input);
    return { channel: channel.name, offset: position.offset, epoch: position.epoch };
  }
}
