import type { EncodedMessage, ProtocolCodec } from '../protocol/codec.js';
import { UnsubscribeCode } from '../protocol/codes.js';
import type { SubscribeResultWire } from '../protocol/types.js';
import { TokenError, type SubscriptionClaims } from './auth.js';
import { keepsHistory, type ResolvedChannel } from './channel.js';
import type { Client } from './client.js';
import { Disconnects, RelaisError } from './errors.js';
import type { FrameCache } from './hub.js';
import type { JsonText } from './json.js';
import type { JoinResult } from './node.js';
import type { ClientInfo, Publication, StreamPosition } from './publication.js';
import type { PreparedPush } from './push_encoders.js';
import { NodeStats } from './stats.js';
import { StreamSubscriber } from './stream_subscriber.js';
import type { TagFilter } from './tag_filter.js';

type PresenceEncoder = (channel: string, info: ClientInfo) => EncodedMessage;

// Stable encoders, one pair per protocol: the hub's FrameCache encodes each event once per node and protocol with them.
const presenceEncoders = new WeakMap<ProtocolCodec, { join: PresenceEncoder; leave: PresenceEncoder }>();

function presenceEncodersOf(codec: ProtocolCodec): { join: PresenceEncoder; leave: PresenceEncoder } {
  let encoders = presenceEncoders.get(codec);
  if (!encoders) {
    encoders = {
      join: (channel, info) => codec.encodePush({ type: 'join', channel, info }),
      leave: (channel, info) => codec.encodePush({ type: 'leave', channel, info }),
    };
    presenceEncoders.set(codec, encoders);
  }
  return encoders;
}

/** Fields of a SubscribeResult (or `subscribe` push) for a joined stream. */
export function subscribeReplyFields(
  channel: ResolvedChannel,
  result: JoinResult,
  flags: { recover: boolean; recoverable: boolean; positioned: boolean; delta?: boolean; filter?: TagFilter | undefined },
): SubscribeResultWire {
  const fields: SubscribeResultWire = {};
  if (keepsHistory(channel.options) && result.position) {
    if (flags.recoverable) fields.recoverable = true;
    if (flags.positioned) fields.positioned = true;
    fields.epoch = result.position.epoch;
    fields.offset = result.position.offset;
  }
  if (flags.recover) {
    fields.was_recovering = true;
    fields.recovered = result.recovered;
  }
  if (flags.delta) fields.delta = true;
  const filter = flags.filter;
  const publications = filter ? result.publications.filter((p) => filter(p.tags)) : result.publications;
  if (publications.length > 0) fields.publications = publications;
  return fields;
}

export interface SubscriptionOptions {
  readonly serverSide?: boolean;
  readonly chanInfo?: JsonText;
  readonly expiresAt?: number;
  /** The subscribe proxy set the expiry: the server prolongs it through the sub_refresh proxy, the client is not asked. */
  readonly refreshedByProxy?: boolean;
  /** Join and leave events of the channel are sent to this subscriber; the channel's `join_leave` when absent. */
  readonly pushJoinLeave?: boolean;
  /** Delta compression negotiated: publications after the first go as fossil deltas where they can. */
  readonly delta?: boolean;
  /** Only publications whose tags pass it are sent. */
  readonly filter?: TagFilter;
  /** Made with a subscription token: its `iat` (Unix ms; undefined when it has none). */
  readonly token?: { readonly issuedAt: number | undefined };
}

/** One channel subscription of a client, as the hub delivers to it. */
export class ClientSubscription extends StreamSubscriber {
  expiresAt: number;
  readonly serverSide: boolean;
  readonly refreshedByProxy: boolean;
  /** A sub_refresh proxy call is in flight. */
  refreshing = false;
  /** Made (or last refreshed) with a subscription token: its `iat`, for invalidations by channel. */
  token: { issuedAt: number | undefined } | undefined;
  readonly info: ClientInfo;
  private held: (EncodedMessage | PreparedPush)[] | null = null;
  private entered = false;
  /** Reported to the node's subscription observers as live. */
  private observed = false;
  private ended = false;
  /** Position of the last publication sent on this subscription (channels with history). */
  private offset = 0;
  private epoch = '';
  private readonly delta: boolean;
  private readonly pushJoinLeave: boolean;
  private readonly filter: TagFilter | undefined;
  /** The publication sent last under delta compression: a delta is only ever against it. */
  private lastSent: Publication | undefined;

  constructor(
    readonly client: Client,
    readonly channel: ResolvedChannel,
    options: SubscriptionOptions = {},
  ) {
    super();
    this.serverSide = options.serverSide ?? false;
    this.expiresAt = options.expiresAt ?? 0;
    this.refreshedByProxy = options.refreshedByProxy ?? false;
    this.token = options.token ? { issuedAt: options.token.issuedAt } : undefined;
    this.delta = options.delta ?? false;
    this.pushJoinLeave = options.pushJoinLeave ?? channel.options.join_leave;
    this.filter = options.filter;
    this.info = options.chanInfo !== undefined ? { ...client.info, chanInfo: options.chanInfo } : client.info;
  }

  /** Holds live frames until `flushPending` (until the connect reply carrying this subscription is written). */
  hold(): void {
    this.held ??= [];
  }

  flushPending(): void {
    const held = this.held;
    this.held = null;
    if (held) for (const frame of held) this.client.write(frame);
  }

  private out(frame: EncodedMessage | PreparedPush): void {
    if (this.held) this.held.push(frame);
    else this.client.write(frame);
  }

  /** Where the subscribe reply left the client: live publications at or before it are not sent again. */
  startAt(position: StreamPosition | undefined): void {
    if (!position) return;
    this.offset = position.offset;
    this.epoch = position.epoch;
  }

  protected deliverPublication(frames: FrameCache<Publication>): void {
    const pub = frames.event;
    if (pub.offset > 0) {
      if (pub.epoch === this.epoch) {
        // History (on the bus) can be ahead of this node's live stream: a publication the
        // subscribe reply already carried may still arrive live. It is not sent twice.
        if (pub.offset <= this.offset) return;
        if (pub.offset !== this.offset + 1) return this.outOfSequence();
      } else if (this.epoch !== '') {
        // Another lineage under a live subscription: only recovery can tell the client.
        return this.outOfSequence();
      }
      this.offset = pub.offset;
      this.epoch = pub.epoch;
    }
    // Its publisher asked not to get it back (after the position moved: no gap is seen).
    if (pub.excludeClient === this.client.id) return;
    // Filtered out after the position moved: the next one sent is not a gap.
    if (this.filter && !this.filter(pub.tags)) return;
    this.client.node.stats.publicationsDelivered++;
    const encoders = this.client.publicationEncoders;
    if (!this.delta) {
      this.out(frames.get(encoders.plain));
      return;
    }
    const chained = this.lastSent !== undefined && frames.previous === this.lastSent;
    this.lastSent = pub;
    this.out(frames.get(chained ? encoders.delta : encoders.full));
  }

  protected deliverJoin(frames: FrameCache<ClientInfo>): void {
    if (!this.pushJoinLeave) return;
    NodeStats.inc(this.client.node.stats.messagesOut, 'join');
    this.out(frames.get(presenceEncodersOf(this.client.codec).join));
  }

  protected deliverLeave(frames: FrameCache<ClientInfo>): void {
    if (!this.pushJoinLeave) return;
    NodeStats.inc(this.client.node.stats.messagesOut, 'leave');
    this.out(frames.get(presenceEncodersOf(this.client.codec).leave));
  }

  /** Writes publications of a join outside a reply (server-side subscribe push). */
  writePublications(publications: readonly Publication[]): void {
    for (const pub of publications) this.out(this.client.publicationEncoders.plain(this.channel.name, pub));
  }

  /**
   * The last guard before the wire: whatever let it through (a bug, a bus anomaly the node
   * did not see), a subscriber never gets an offset that is not the next one. It goes back
   * through recovery instead, and the metric shows that it happened.
   */
  private outOfSequence(): void {
    NodeStats.inc(this.client.node.stats.outOfSequence, 'subscriber');
    this.handleGap();
  }

  /** The bus lost publications of this channel: the client recovers them by resubscribing. */
  protected handleGap(): void {
    if (this.serverSide) {
      this.client.disconnect(Disconnects.insufficientState);
      return;
    }
    this.client.removeSubscription(this);
    this.client.write(
      this.client.codec.encodePush({ type: 'unsubscribe', channel: this.channel.name, code: UnsubscribeCode.insufficientState, reason: 'insufficient state' }),
    );
  }

  /** Adds presence and publishes the join where the namespace wants them; failures are logged. */
  async enter(): Promise<void> {
    if (this.ended) return;
    if (!this.observed) {
      this.observed = true;
      this.client.node.subscriptionStarted(this.channel.name, this.info);
    }
    if (!this.channel.options.presence && !this.channel.options.join_leave) return;
    try {
      await this.client.node.enterChannel(this.channel, this.info);
      this.entered = true;
      if (this.ended) this.client.node.leaveChannel(this.channel, this.info);
    } catch (err) {
      this.client.logger.warn({ err, channel: this.channel.name }, 'presence not recorded');
    }
  }

  /** Leaves the channel: no more deliveries, presence removed, leave published. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.held = null;
    this.client.node.detach(this.channel.name, this);
    if (this.entered) this.client.node.leaveChannel(this.channel, this.info);
    if (this.observed) this.client.node.subscriptionEnded(this.channel.name, this.info);
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Checks a subscription token for this channel and connection. */
  async verifyToken(token: string): Promise<SubscriptionClaims> {
    return verifySubscriptionToken(this.client, this.channel, token);
  }

  expiry(): { expires?: true; ttl?: number } {
    if (this.expiresAt === 0 || this.refreshedByProxy) return {};
    return { expires: true, ttl: Math.max(1, Math.ceil((this.expiresAt - Date.now()) / 1000)) };
  }
}

/** Verifies a subscription token: right channel, right user, not expired. */
export async function verifySubscriptionToken(client: Client, channel: ResolvedChannel, token: string): Promise<SubscriptionClaims> {
  let claims: SubscriptionClaims;
  try {
    claims = await client.node.tokens.verifySubscription(token);
  } catch (err) {
    if (err instanceof TokenError && err.reason === 'expired') throw new RelaisError('TOKEN_EXPIRED');
    throw new RelaisError('FORBIDDEN', `invalid subscription token: ${err instanceof Error ? err.message : 'refused'}`);
  }
  if (claims.channel !== channel.name) throw new RelaisError('FORBIDDEN', 'subscription token is for another channel');
  if (claims.user !== client.user) throw new RelaisError('FORBIDDEN', 'subscription token is for another user');
  // TOKEN_EXPIRED: the SDKs fetch a new token (getToken) and subscribe again with it.
  const refusal = client.node.subscriptionRefusal(client.user, channel.name, claims.issuedAt);
  if (refusal) throw new RelaisError('TOKEN_EXPIRED', `subscription ${refusal}`);
  return claims;
}
