/**
 * `relais/client`: small helpers on top of the `centrifuge` SDK, which is the Relais JavaScript
 * client. Channel names that match the embedded namespaces, the chat message shape, and a typed
 * subscription that hands the application each publication once, in offset order.
 * See docs/client.md.
 */
import type { Centrifuge, PublicationContext, SubscribedContext, Subscription, SubscriptionOptions } from 'centrifuge';

export { mintToken, type TokenClaims } from './token.js';
export {
  BATCH_NAMESPACE,
  TERMINAL_STATUSES,
  batchChannel,
  isTerminalStatus,
  publishJobState,
  JobPublishError,
  type JobState,
  type PublishJobStateOptions,
} from './jobs.js';

/** Namespace of chat rooms in the embedded defaults: `chat:<room>`. */
export const CHAT_NAMESPACE = 'chat';
/** Namespace of personal channels in the embedded defaults: `user:<id>`, readable only by `<id>`. */
export const USER_NAMESPACE = 'user';
/** Namespace of rooms with members in the embedded defaults: `room:<name>` (docs/chat.md). */
export const ROOM_NAMESPACE = 'room';
/** Namespace of the conversations of two users in the embedded defaults: `dm:<a>,<b>`. */
export const DM_NAMESPACE = 'dm';
/** Namespace of user statuses in the embedded defaults: `status:<user>`. */
export const STATUS_NAMESPACE = 'status';

/** The characters the server accepts in a channel name (see docs/errors.md, CHANNEL_INVALID). */
const NAME_CHARS = /^[A-Za-z0-9_.:@=,#+~/-]+$/;

function checkPart(kind: string, value: string): string {
  if (!NAME_CHARS.test(value)) {
    throw new TypeError(`invalid ${kind} "${value}": use letters, digits and _ . : @ = , # + ~ / - (no spaces)`);
  }
  return value;
}

/** `chat:<room>`. Throws a TypeError for an empty room or one with characters the server refuses. */
export function chatChannel(room: string): string {
  return `${CHAT_NAMESPACE}:${checkPart('room name', room)}`;
}

/** The room of a `chat:<room>` channel, or undefined for a channel of another namespace. */
export function roomOf(channel: string): string | undefined {
  const prefix = `${CHAT_NAMESPACE}:`;
  return channel.startsWith(prefix) && channel.length > prefix.length ? channel.slice(prefix.length) : undefined;
}

/** `user:<id>`: every connection of that user, and only that user, may subscribe to it. */
export function personalChannel(user: string): string {
  return `${USER_NAMESPACE}:${checkPart('user id', user)}`;
}

/**
 * `@<id>`: publish there (`centrifuge.publish(directAddress('alice'), data)`) to send a direct
 * message; the server delivers it on `user:<id>` with the sender taken from the token.
 */
export function directAddress(user: string): string {
  return `@${checkPart('user id', user)}`;
}

/** `room:<name>`: a room with members; only its members subscribe, publish and read its history. */
export function roomChannel(room: string): string {
  return `${ROOM_NAMESPACE}:${checkPart('room name', room)}`;
}

/**
 * `dm:<a>,<b>`: the conversation of two users, ids sorted, so both name it alike. Throws a
 * TypeError for an id with a comma (it would split the name) or characters the server refuses.
 */
export function dmChannel(user: string, other: string): string {
  for (const id of [user, other]) {
    checkPart('user id', id);
    if (id.includes(',')) throw new TypeError(`invalid user id "${id}": a conversation cannot name an id with a comma`);
  }
  return user <= other ? `${DM_NAMESPACE}:${user},${other}` : `${DM_NAMESPACE}:${other},${user}`;
}

/** `status:<user>`: the user's status (`{"user","status","last_seen"?}` on every change), for any authenticated user. */
export function statusChannel(user: string): string {
  return `${STATUS_NAMESPACE}:${checkPart('user id', user)}`;
}

/** What `relais chat` publishes to a room; the sender is the publication's `info.user`, never a field of the data. */
export interface ChatMessage {
  readonly text: string;
}

export function isChatMessage(data: unknown): data is ChatMessage {
  return typeof data === 'object' && data !== null && typeof (data as { text?: unknown }).text === 'string';
}

/** Offsets `from`..`to` (inclusive) of one history lineage that were never delivered. */
export interface OffsetGap {
  readonly from: number;
  readonly to: number;
}

/**
 * Keeps the publications of one subscription in offset order, each once. The SDK delivers
 * publications recovered after a reconnect as ordinary publication events and does not drop
 * repeats itself, so an application that must not show a message twice filters them here.
 *
 * Contract: within one epoch, `check` admits an offset only if it is past the last one passed to
 * `delivered`; a jump past `last + 1` is reported as a gap (and admitted). A subscribe that did
 * not recover may bring, in its reply, the channel's latest publications up to the position it
 * gave (`history_on_join`, a chat room's last messages): those are admitted once each, in
 * order, except what was delivered before in the same epoch. A subscription without positions
 * (a channel with no history) has no offsets: everything is admitted.
 */
export class OffsetGuard {
  private last: number | undefined;
  private epoch: string | undefined;
  /**
   * After a subscribe that did not recover, the reply may carry the channel's latest
   * publications (`history_on_join`), at offsets up to the position it gave: those above this
   * one are admitted, once each and in order, until the position is reached or a later
   * publication comes. Undefined otherwise.
   */
  private replayAfter: number | undefined;

  /** The last offset delivered, or the position subscribed at; undefined before any. */
  get position(): { offset: number; epoch: string } | undefined {
    return this.last === undefined || this.epoch === undefined ? undefined : { offset: this.last, epoch: this.epoch };
  }

  /**
   * Takes a `subscribed` event. A first subscribe, a failed recovery or a new epoch starts from
   * the position the server gave; a successful recovery keeps the last delivered offset, since
   * the recovered publications follow. Returns the gap a failed recovery left in the same epoch.
   */
  subscribed(ctx: Pick<SubscribedContext, 'wasRecovering' | 'recovered' | 'streamPosition'>): OffsetGap | undefined {
    const position = ctx.streamPosition;
    if (position === undefined) {
      this.last = undefined;
      this.epoch = undefined;
      return undefined;
    }
    const sameEpoch = this.epoch === position.epoch;
    const previous = this.last;
    this.epoch = position.epoch;
    if (sameEpoch && ctx.wasRecovering && ctx.recovered && previous !== undefined) return undefined;
    this.last = position.offset;
    // Only a subscribe that did not ask to recover gets the latest publications in its reply;
    // what this guard already passed in the same epoch is never replayed to it.
    this.replayAfter = ctx.wasRecovering ? undefined : sameEpoch && previous !== undefined ? Math.min(previous, position.offset) : 0;
    if (this.replayAfter !== undefined && this.replayAfter >= position.offset) this.replayAfter = undefined;
    if (sameEpoch && ctx.wasRecovering && !ctx.recovered && previous !== undefined && position.offset > previous) {
      return { from: previous + 1, to: position.offset };
    }
    return undefined;
  }

  /** Whether a publication at `offset` is new, and the gap before it if some were skipped. */
  check(offset: number | undefined): { readonly fresh: boolean; readonly gap?: OffsetGap } {
    if (offset === undefined || this.last === undefined) return { fresh: true };
    if (this.replayAfter !== undefined && offset <= this.last) return { fresh: offset > this.replayAfter };
    if (offset <= this.last) return { fresh: false };
    if (offset > this.last + 1) return { fresh: true, gap: { from: this.last + 1, to: offset - 1 } };
    return { fresh: true };
  }

  /** Records that the application has handled the publication at `offset`. */
  delivered(offset: number | undefined): void {
    if (offset === undefined) return;
    if (this.replayAfter !== undefined && this.last !== undefined && offset <= this.last) {
      this.replayAfter = offset < this.last ? Math.max(this.replayAfter, offset) : undefined;
      return;
    }
    this.replayAfter = undefined;
    if (this.last === undefined || offset > this.last) this.last = offset;
  }
}

export interface TypedSubscriptionOptions<T> extends Partial<SubscriptionOptions> {
  /**
   * Turns the publication data into `T`, throwing when it does not fit (a zod schema's `parse`
   * will do). Without it the data is taken to be `T` as it is.
   */
  readonly parse?: (data: unknown) => T;
  /** Publications whose data `parse` refused; they are skipped. */
  readonly onInvalid?: (error: unknown, ctx: PublicationContext) => void;
  /** Offsets that were never delivered: a jump in the live stream, or a failed recovery. */
  readonly onGap?: (gap: OffsetGap, channel: string) => void;
}

/**
 * Creates a subscription to `channel`, calls `onMessage` for each publication and subscribes.
 * `onMessage` sees each offset at most once and in increasing order, including across
 * reconnects where the SDK recovers missed publications; an offset counts as delivered once
 * `onMessage` returns: if it throws, the SDK stops the client (its rule for exceptions in
 * handlers) and neither it nor this guard counts the publication, so a later recovery brings
 * it again. Throws, like `newSubscription`, when the client already has a subscription to
 * `channel`. Returns the Subscription for the SDK's other events and methods.
 */
export function subscribeTyped<T>(
  centrifuge: Centrifuge,
  channel: string,
  onMessage: (data: T, ctx: PublicationContext) => void,
  options: TypedSubscriptionOptions<T> = {},
): Subscription {
  const { parse, onInvalid, onGap, ...subscriptionOptions } = options;
  const guard = new OffsetGuard();
  const sub = centrifuge.newSubscription(channel, subscriptionOptions);
  sub.on('subscribed', (ctx) => {
    const gap = guard.subscribed(ctx);
    if (gap) onGap?.(gap, channel);
  });
  sub.on('publication', (ctx) => {
    const { fresh, gap } = guard.check(ctx.offset);
    if (!fresh) return;
    if (gap) onGap?.(gap, channel);
    let data: T;
    if (parse) {
      try {
        data = parse(ctx.data);
      } catch (err) {
        guard.delivered(ctx.offset);
        onInvalid?.(err, ctx);
        return;
      }
    } else {
      data = ctx.data as T;
    }
    onMessage(data, ctx);
    guard.delivered(ctx.offset);
  });
  sub.subscribe();
  return sub;
}
