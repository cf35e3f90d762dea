import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { passesRule } from '../../core/access.js';
import { TokenError, type ConnectionClaims, type TokenIdentity } from '../../core/auth.js';
import type { NamespaceOptions } from '../../config/schema.js';
import { historyRetention, isPattern, keepsHistory, type ResolvedChannel, type ResolvedPattern } from '../../core/channel.js';
import { namespaceProxy, pickHeaders, type ProxyCaller } from '../../core/client_proxy.js';
import { DisconnectError, RelaisError } from '../../core/errors.js';
import type { TagFilter } from '../../core/tag_filter.js';
import type { Node } from '../../core/node.js';
import type { Publication, StreamPosition } from '../../core/publication.js';
import { mergeRecovery } from '../../core/recovery.js';
import { FlushScheduler } from '../flush_scheduler.js';
import { MAX_PATTERN_POSITIONS, SseChannelSubscription, SseClient, SseStream, sseBareData, sseEventData } from './sse_stream.js';
import type { SseChannelEvents, SseDataFormat } from './channel_events.js';
import { decodeEventId, type StreamCursor } from './event_id.js';

export interface SseRequest {
  readonly channels: readonly string[];
  readonly token: string | undefined;
  readonly lastEventId: string | undefined;
  /** What a publication event carries; the envelope by default. */
  readonly format?: SseDataFormat;
  /** Only publications whose tags pass it are streamed (the `tf` parameter). */
  readonly filter?: TagFilter;
  /** The request's headers, of which the proxies forward the configured ones. */
  readonly headers?: Readonly<Record<string, string | string[] | undefined>>;
}

/** Who opens a stream, and until when. */
export interface SseIdentity {
  readonly user: string;
  /** Unix ms when the token expires and the stream ends; undefined when it never does. */
  readonly expiresAt: number | undefined;
  /** The token the stream was opened with, for revocations. */
  readonly token?: TokenIdentity;
  /** The stream as the app backend's proxies know it (its client id, forwarded headers). */
  readonly caller?: ProxyCaller;
  /** The connect proxy set the expiry: the refresh proxy prolongs it, as for a WebSocket connection. */
  readonly refreshedByProxy?: boolean;
}

/** What an authorized request may stream, and until when. */
export interface SseGrant extends SseIdentity {
  readonly channels: readonly ResolvedChannel[];
  readonly patterns: readonly ResolvedPattern[];
}

/**
 * A proxy call before the stream opens: a `disconnect` answer can only be an HTTP refusal
 * there, with the backend's code and reason.
 */
async function viaProxy<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof DisconnectError) throw new RelaisError('PROXY_REFUSED', err.disconnect.reason || 'refused by the app backend', { wireCode: err.disconnect.code });
    throw err;
  }
}

/** Longest delay setTimeout honours; a later expiry is checked again after it. */
const MAX_TIMER_MS = 2_147_483_647;
/** A refresh proxy that could not answer is asked again this much later (as for WebSocket connections). */
const PROXY_REFRESH_RETRY_MS = 5_000;

/**
 * `GET /sse`: a unidirectional stream of the publications of one or more channels or
 * globs, resumable through Last-Event-ID on any node.
 */
export class SseEndpoint {
  private readonly scheduler = new FlushScheduler();
  private readonly streams = new Set<SseStream>();
  private readonly streamsPerUser = new Map<string, number>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly channelEvents = new Map<string, SseChannelEvents>();

  constructor(
    private readonly node: Node,
    private readonly logger: Logger,
  ) {
    this.heartbeat = setInterval(() => {
      for (const stream of this.streams) stream.comment('ping');
    }, node.config.sse.heartbeat_interval);
    this.heartbeat.unref();
  }

  /** Gives the publications of `namespace` a feature's event names and final event (one per namespace). */
  useChannelEvents(namespace: string, events: SseChannelEvents): void {
    if (this.channelEvents.has(namespace)) throw new Error(`namespace "${namespace}" already has SSE channel events`);
    this.channelEvents.set(namespace, events);
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /**
   * Checks a stream's token (or anonymous access) and the user's stream limit; throws
   * RelaisError before anything is written. Features' SSE routes (telemetry) use it too.
   */
  async authenticate(token: string | undefined, headers?: SseRequest['headers']): Promise<SseIdentity> {
    let user = '';
    let expiresAt: number | undefined;
    let claims: ConnectionClaims | undefined;
    const proxies = this.node.proxies;
    let caller: ProxyCaller = {
      client: randomUUID(),
      transport: 'sse',
      user: '',
      headers: proxies && headers ? pickHeaders(headers, proxies.httpHeaders) : {},
    };
    if (token) {
      try {
        claims = await this.node.tokens.verifyConnection(token);
        user = claims.user;
        expiresAt = claims.expiresAt;
      } catch (err) {
        if (err instanceof TokenError && err.reason === 'expired') throw new RelaisError('TOKEN_EXPIRED');
        throw new RelaisError('UNAUTHORIZED', 'invalid token', { cause: err });
      }
    } else if (proxies?.connect) {
      const connect = proxies.connect;
      // Centrifugo's connect proxy serves unidirectional transports too: the stream's cookies decide.
      const result = await viaProxy(() => connect(caller, {}));
      user = result.user;
      expiresAt = result.expiresAt;
      if (result.meta !== undefined) caller = { ...caller, meta: result.meta };
    } else if (!this.node.config.allow_anonymous) {
      throw new RelaisError('UNAUTHORIZED', 'a token is required (Authorization: Bearer, or ?token=)');
    }
    // A user the connect proxy vouched for has no token to revoke, but may still be blocked.
    const refusal = claims ? this.node.connectionRefusal(claims) : user !== '' ? this.node.connectionRefusal({ user }) : undefined;
    if (refusal) throw new RelaisError('UNAUTHORIZED', refusal.reason);
    const maxPerUser = this.node.config.sse.max_streams_per_user;
    if (maxPerUser > 0 && user !== '' && (this.streamsPerUser.get(user) ?? 0) >= maxPerUser) {
      throw new RelaisError('RATE_LIMITED', `more than ${maxPerUser} SSE streams open for this user`);
    }
    return {
      user,
      expiresAt,
      caller: { ...caller, user },
      ...(!claims && expiresAt !== undefined ? { refreshedByProxy: true } : {}),
      // A proxied user's stream carries its user alone: blocking it later ends the stream too.
      ...(claims
        ? { token: { user, ...(claims.tokenId !== undefined ? { tokenId: claims.tokenId } : {}), ...(claims.issuedAt !== undefined ? { issuedAt: claims.issuedAt } : {}) } }
        : user !== ''
          ? { token: { user } }
          : {}),
    };
  }

  /** Checks the request; throws RelaisError before anything is written. */
  async authorize(request: SseRequest): Promise<SseGrant> {
    const identity = await this.authenticate(request.token, request.headers);
    const { user } = identity;
    const proxies = this.node.proxies;
    if (request.channels.length === 0) throw new RelaisError('BAD_REQUEST', 'at least one channel parameter is required');
    if (request.channels.length > this.node.config.sse.max_channels) {
      throw new RelaisError('LIMIT_EXCEEDED', `more than ${this.node.config.sse.max_channels} channels in one stream`);
    }
    const channels: ResolvedChannel[] = [];
    const patterns: ResolvedPattern[] = [];
    for (const name of new Set(request.channels)) {
      if (isPattern(name)) {
        const pattern = this.node.channels.resolvePattern(name);
        const rule = pattern.options.allow_subscribe;
        // The subscribe proxy judges channels one by one: it cannot answer for a glob.
        if (pattern.options.proxy_subscribe || rule === 'owner' || !passesRule(rule, user, { name, namespace: pattern.namespace, rest: '', options: pattern.options })) {
          throw new RelaisError('FORBIDDEN', `cannot subscribe to pattern "${name}"`);
        }
        patterns.push(pattern);
      } else {
        const channel = this.node.channels.resolve(name);
        const subscribe = namespaceProxy(proxies, 'subscribe', channel.options);
        const caller = identity.caller;
        if (subscribe && caller) await viaProxy(() => subscribe(caller, channel.name, undefined));
        else await this.node.authorize('subscribe', user, channel);
        channels.push(channel);
      }
    }
    return { ...identity, channels, patterns };
  }

  /** Opens the stream on an authorized request. Resolves once it is live. */
  async open(res: ServerResponse, request: SseRequest, grant: SseGrant): Promise<void> {
    const decoded = decodeEventId(request.lastEventId);
    // A time ahead of this clock would hide the next publications of every new glob channel.
    const cursor = decoded && { time: Math.min(decoded.time, Date.now()), positions: decoded.positions };
    if (cursor && (await this.endedBefore(cursor.positions, grant))) {
      // 204 is how a server tells EventSource not to reconnect: the stream already ended.
      res.writeHead(204);
      res.end();
      return;
    }
    const stream = this.openStream(res, grant, cursor?.time ?? Date.now(), request.filter);
    for (const channel of grant.channels) stream.markExact(channel.name);
    stream.hasPatterns = grant.patterns.length > 0;
    // Ids written while the channels join must still carry the resumed position of those
    // not joined yet: a client cut off then would otherwise resume them from scratch.
    const resumed = cursor ? this.resumablePositions(cursor.positions, grant) : new Map<string, StreamPosition>();
    for (const [name, position] of resumed) stream.setPosition(name, position);
    try {
      for (const channel of grant.channels) await this.joinChannel(stream, channel, resumed.get(channel.name), request.format ?? 'envelope');
      for (const pattern of grant.patterns) await this.joinPattern(stream, pattern, cursor && { time: cursor.time, positions: resumed });
      stream.joined();
    } catch (err) {
      this.logger.warn({ err }, 'sse stream could not join its channels');
      stream.named('error', { message: err instanceof Error ? err.message : 'subscribe failed' });
      stream.close();
    }
  }

  /**
   * Starts an SSE response for an authenticated user: counted as a connection of the node
   * (per-user limit, server API `disconnect`), given heartbeats, ended when its token expires
   * or the node shuts down. Features' SSE routes write their own events on it.
   */
  openStream(res: ServerResponse, identity: SseIdentity, startTime = Date.now(), filter?: TagFilter): SseStream {
    const stream = new SseStream(res, this.scheduler, this.node.config.client.max_queue_bytes, startTime, this.node.stats, filter);
    this.streams.add(stream);
    this.streamsPerUser.set(identity.user, (this.streamsPerUser.get(identity.user) ?? 0) + 1);
    const client = new SseClient(identity.user, stream, identity.token, identity.caller?.client);
    this.node.registerClient(client);
    stream.onClose(() => {
      this.node.unregisterClient(client);
      this.streams.delete(stream);
      const left = (this.streamsPerUser.get(identity.user) ?? 1) - 1;
      if (left > 0) this.streamsPerUser.set(identity.user, left);
      else this.streamsPerUser.delete(identity.user);
    });
    res.on('close', () => stream.close());
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write(': relais\nretry: 2000\n\n');
    if (identity.expiresAt !== undefined) this.endAtExpiry(stream, identity.expiresAt, identity.refreshedByProxy === true ? identity.caller : undefined);
    return stream;
  }

  /**
   * The positions of a Last-Event-ID this stream can use: its exact channels, and channels
   * of its globs — valid names only, and no more than a stream of ours ever lists.
   */
  private resumablePositions(positions: ReadonlyMap<string, StreamPosition>, grant: SseGrant): Map<string, StreamPosition> {
    const out = new Map<string, StreamPosition>();
    const exact = new Set(grant.channels.map((c) => c.name));
    let fromPatterns = 0;
    for (const [name, position] of positions) {
      if (exact.has(name)) {
        out.set(name, position);
      } else if (fromPatterns < MAX_PATTERN_POSITIONS && grant.patterns.some((p) => p.matcher(name)) && this.isChannelName(name)) {
        out.set(name, position);
        fromPatterns++;
      }
    }
    return out;
  }

  private isChannelName(name: string): boolean {
    try {
      this.node.channels.resolve(name);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * A stream lives as long as its token: then it ends, and a reconnection needs a fresh token.
   * A stream the connect proxy authenticated (`proxied`) asks the refresh proxy instead, as a
   * WebSocket connection does: a new `expire_at` prolongs it (none: never expires again),
   * `expired` or a `disconnect` ends it, and a backend that cannot answer is asked again later.
   * Without a refresh proxy it ends.
   */
  private endAtExpiry(stream: SseStream, expiresAt: number, proxied?: ProxyCaller): void {
    let timer: NodeJS.Timeout | undefined;
    let until = expiresAt;
    const end = (event: string, data: unknown): void => {
      stream.named(event, data);
      stream.close();
    };
    const schedule = (): void => {
      timer = setTimeout(check, Math.min(Math.max(0, until - Date.now()), MAX_TIMER_MS));
      timer.unref();
    };
    const check = (): void => {
      if (stream.isClosed) return;
      if (until - Date.now() > 0) return schedule();
      const refresh = proxied ? this.node.proxies?.refresh : undefined;
      if (!refresh || !proxied) return end('expired', { reason: 'token expired' });
      refresh(proxied)
        .then((result) => {
          if (stream.isClosed) return;
          if (result.expired) return end('expired', { reason: 'expired' });
          if (result.expiresAt === undefined) return;
          until = result.expiresAt;
          schedule();
        })
        .catch((err: unknown) => {
          if (stream.isClosed) return;
          if (err instanceof DisconnectError) return end('disconnect', { code: err.disconnect.code, reason: err.disconnect.reason });
          this.logger.warn({ err }, 'refresh proxy failed for an SSE stream: asking again later');
          until = Date.now() + PROXY_REFRESH_RETRY_MS;
          schedule();
        });
    };
    check();
    stream.onClose(() => clearTimeout(timer));
  }

  /**
   * Whether a resumed stream of one channel with a final event already got that channel's final
   * publication: its position is at or past the channel's latest, and the latest is final.
   */
  private async endedBefore(positions: ReadonlyMap<string, StreamPosition>, grant: SseGrant): Promise<boolean> {
    const channel = grant.channels[0];
    if (grant.channels.length !== 1 || grant.patterns.length > 0 || !channel) return false;
    const events = this.channelEvents.get(channel.namespace);
    const position = positions.get(channel.name);
    if (!events || !position || !keepsHistory(channel.options)) return false;
    let latest;
    try {
      latest = (await this.node.latest(channel)).publication;
    } catch (err) {
      // The bus cannot tell now: open the stream as usual, its join reports the outage.
      this.logger.warn({ err, channel: channel.name }, 'latest value unavailable for a resumed stream');
      return false;
    }
    return latest !== undefined && events.isFinal(latest) && position.epoch === latest.epoch && position.offset >= latest.offset;
  }

  private async joinChannel(stream: SseStream, channel: ResolvedChannel, since: StreamPosition | undefined, format: SseDataFormat): Promise<void> {
    if (stream.isClosed) return;
    const sub = new SseChannelSubscription(stream, this.channelEvents.get(channel.namespace), format === 'data' ? sseBareData : sseEventData);
    const recover = keepsHistory(channel.options) && since !== undefined;
    await this.node.joinStream(channel, sub, { recover, resume: true, ...(since ? { since } : {}) }, (result) => {
      if (result.position) {
        // Start just before what is replayed, so that each replayed event moves the position itself.
        const first = result.publications[0];
        stream.setPosition(channel.name, first && first.offset > 0 ? { offset: first.offset - 1, epoch: first.epoch } : result.position);
      }
      stream.named('subscribed', {
        channel: channel.name,
        ...(result.position ? { offset: result.position.offset, epoch: result.position.epoch } : {}),
        was_recovering: recover,
        recovered: recover && result.recovered,
      });
      for (const pub of result.publications) sub.write(channel.name, pub, sub.dataOf(channel.name, pub), false);
    });
    stream.onClose(() => this.node.detach(channel.name, sub));
  }

  /**
   * Joins a glob. On a resume, each of its channels replays from its position in the id, or,
   * for channels the id does not list (no event before it), from the id's time. A channel
   * whose history no longer holds all it missed replays nothing and gets `unrecovered`, as an
   * exact channel gets `recovered: false`: never a partial replay.
   */
  private async joinPattern(stream: SseStream, pattern: ResolvedPattern, cursor: StreamCursor | undefined): Promise<void> {
    if (stream.isClosed) return;
    const sub = new SseChannelSubscription(stream);
    stream.onClose(() => this.node.detachPattern(pattern.pattern, sub));
    await this.node.attachPattern(pattern.pattern, sub);
    const replay: { channel: string; replay: GlobReplay }[] = [];
    if (cursor && keepsHistory(pattern.options)) {
      const names = new Set(await this.node.streamChannels(pattern));
      for (const name of cursor.positions.keys()) if (pattern.matcher(name)) names.add(name);
      for (const name of names) {
        if (!this.isChannelName(name)) continue;
        const since = cursor.positions.get(name);
        replay.push({ channel: name, replay: await this.readGlobReplay(this.node.channels.resolve(name), since, cursor.time) });
      }
    }
    // Nothing awaits from here: replay, then what arrived meanwhile (duplicates skipped by offset).
    for (const { channel, replay: r } of replay) {
      if (r.unrecovered) {
        stream.named('unrecovered', { channel, reason: r.unrecovered });
        stream.setPosition(channel, r.position);
        continue;
      }
      if (r.since) stream.setPosition(channel, r.since);
      for (const pub of r.publications) stream.publication(channel, pub, sseEventData(channel, pub), undefined, false);
    }
    stream.named('subscribed', { pattern: pattern.pattern, was_recovering: cursor !== undefined });
    for (const frames of sub.goLive()) stream.publication(frames.channel, frames.event, frames.get(sseEventData));
  }

  /** What one channel of a resumed glob missed, read from history. */
  private async readGlobReplay(channel: ResolvedChannel, since: StreamPosition | undefined, time: number): Promise<GlobReplay> {
    const options = channel.options;
    const limit = options.recovery_max_publications;
    if (since) {
      const history = await this.node.history(channel, { since, limit: limit + 1 });
      const outcome = mergeRecovery({ recover: true, since, maxPublications: limit, history, buffered: [] });
      if (outcome.ok && outcome.recovered) return { since, publications: outcome.publications, position: outcome.position };
      const reason = history.position.epoch !== since.epoch ? 'history lost' : 'history no longer holds every missed publication';
      return { publications: [], position: history.position, unrecovered: reason };
    }
    // Newest first: the publications at or after `time` are at the top of history.
    const history = await this.node.history(channel, { limit: limit + 1, reverse: true });
    const missed = history.publications.filter((p) => p.time >= time).reverse();
    if (missed.length > limit || !holdsEverythingSince(history.publications, history.position, time, options)) {
      return { publications: [], position: history.position, unrecovered: 'history no longer holds every missed publication' };
    }
    return { publications: missed, position: history.position };
  }

  /** Ends every stream (shutdown): EventSource clients reconnect, to another node if need be. */
  closeAll(): void {
    clearInterval(this.heartbeat);
    for (const stream of [...this.streams]) stream.close();
  }
}

/**
 * Whether a channel's history, read newest first with a limit, holds every publication made
 * at or after `time`: it reaches back before `time`, or it was trimmed of nothing that recent.
 */
function holdsEverythingSince(newest: readonly Publication[], top: StreamPosition, time: number, options: NamespaceOptions): boolean {
  const oldest = newest[newest.length - 1];
  if (oldest !== undefined && oldest.time < time) return true;
  if (newest.length > options.recovery_max_publications) return false;
  // Publications of this epoch that history no longer keeps: none, and nothing was lost.
  const dropped = oldest ? oldest.offset - 1 : top.offset;
  if (dropped === 0) return true;
  // Trimmed, but by age only (history not full), and only what is older than `time`.
  const kept = historyRetention(options);
  return newest.length < kept.size && time > Date.now() - kept.ttlMs;
}

/** The replay of one channel of a resumed glob. */
interface GlobReplay {
  /** Where the replay starts (the id's position), when the id listed the channel. */
  readonly since?: StreamPosition;
  readonly publications: readonly Publication[];
  /** The channel's top when history was read. */
  readonly position: StreamPosition;
  /** Set when history cannot serve the replay: why. */
  readonly unrecovered?: string;
}
