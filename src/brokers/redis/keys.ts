/**
 * The Redis key and pub/sub channel scheme of one Relais deployment (one prefix).
 *
 *   <prefix>.{<channel>}.meta            hash {e: epoch, o: offset}  - the stream's position
 *   <prefix>.{<channel>}.stream          stream of publications, ID `<offset>-0`
 *   <prefix>.{<channel>}.idem.<key>      string "<offset>:<epoch>" - an idempotent publish's result
 *   <prefix>.{<channel>}.presence        hash clientId -> ClientInfo JSON
 *   <prefix>.{<channel>}.presence.exp    sorted set clientId -> expiry (Redis clock, ms)
 *   <prefix>.{<channel>}.occupancy       hash nodeId -> 1: the nodes with subscribers of the channel
 *   <prefix>.occupancy.{node:<id>}.channels  set of the channels a node holds (what a sweep clears)
 *   <prefix>.occupancy.{node:<id>}.alive     a node's liveness key (expiring)
 *   <prefix>.occupancy.nodes             set of the nodes that may hold channels
 *   <prefix>.{<channel>}.pub             pub/sub (or sharded pub/sub) channel of its publications, joins, leaves;
 *                                        pattern subscriptions PSUBSCRIBE `<prefix>.{<glob>}.pub` (classic mode only)
 *   <prefix>.control                     pub/sub channel every node listens to
 *
 * Every key of a channel carries the channel as its Redis Cluster hash tag, so a channel's
 * keys and its sharded pub/sub channel live in one slot: the Lua scripts touching several
 * of them, and the SPUBLISH inside them, stay valid on a Cluster. The channel is encoded
 * so that `{`, `}` (which would end the hash tag early) and `%` (the escape itself) never
 * appear raw: the mapping from (channel, suffix) to key is injective whatever the channel.
 */

/** Prefixes are part of every key and of SCAN patterns: kept to characters that need no escaping. */
const PREFIX_CHARS = /^[A-Za-z0-9_.:/-]+$/;

export function assertValidPrefix(prefix: string): void {
  if (!PREFIX_CHARS.test(prefix)) {
    throw new Error(`redis prefix "${prefix}" must be non-empty and use only letters, digits and _ . : / -`);
  }
}

/** `%`, `{` and `}` percent-encoded; channel names never contain them, so this is normally the identity. */
export function encodeChannel(channel: string): string {
  return /[%{}]/.test(channel) ? channel.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`) : channel;
}

export function decodeChannel(encoded: string): string {
  return encoded.includes('%') ? encoded.replace(/%(25|7B|7D)/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))) : encoded;
}

/** Escapes Redis glob metacharacters so that a literal matches itself in SCAN MATCH. */
function escapeRedisGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, '\\$&');
}

/** Names of the keys and pub/sub channels under one prefix; see the scheme above. */
export class RedisKeys {
  readonly control: string;
  private readonly metaPrefix: string;

  constructor(readonly prefix: string) {
    assertValidPrefix(prefix);
    this.control = `${prefix}.control`;
    this.metaPrefix = `${prefix}.{`;
  }

  private base(channel: string): string {
    return `${this.prefix}.{${encodeChannel(channel)}}`;
  }

  meta(channel: string): string {
    return `${this.base(channel)}.meta`;
  }

  stream(channel: string): string {
    return `${this.base(channel)}.stream`;
  }

  idempotency(channel: string, key: string): string {
    return `${this.base(channel)}.idem.${key}`;
  }

  presence(channel: string): string {
    return `${this.base(channel)}.presence`;
  }

  presenceExpiry(channel: string): string {
    return `${this.base(channel)}.presence.exp`;
  }

  /** The nodes with subscribers of a channel (lifecycle webhooks' occupancy). */
  occupancy(channel: string): string {
    return `${this.base(channel)}.occupancy`;
  }

  /** The channels a node holds in the occupancy; in the node's own slot, with its liveness key. */
  occupancyNode(node: string): string {
    return `${this.prefix}.occupancy.{node:${encodeChannel(node)}}.channels`;
  }

  occupancyAlive(node: string): string {
    return `${this.prefix}.occupancy.{node:${encodeChannel(node)}}.alive`;
  }

  /** The registry of nodes that may hold channels in the occupancy. */
  get occupancyNodes(): string {
    return `${this.prefix}.occupancy.nodes`;
  }

  /** The bus channel of a channel's publications, joins and leaves. */
  bus(channel: string): string {
    return `${this.base(channel)}.pub`;
  }

  /**
   * PSUBSCRIBE pattern covering the bus channels of every channel matching `channelGlob`
   * (compileGlob's `*` and `?`). It may cover more, never less: `?` widens to `*`, because
   * Redis matches bytes (one `?` would not match a multi-byte character, nor an encoded
   * `{`); receivers check the channel with compileGlob. Everything else is literal:
   * encoded as in `bus`, with Redis' own metacharacters escaped.
   */
  busPattern(channelGlob: string): string {
    const glob = encodeChannel(channelGlob).replace(/[[\]\\]/g, '\\$&').replace(/\?/g, '*');
    return `${escapeRedisGlob(this.metaPrefix)}${glob}}.pub`;
  }

  /** The channel whose bus channel this is, or undefined for any other pub/sub channel. */
  channelOfBus(busChannel: string): string | undefined {
    return this.channelOfSuffixed(busChannel, '}.pub');
  }

  /**
   * SCAN MATCH pattern for the meta keys of channels matching `channelGlob` (`*` and `?`
   * only, as compileGlob reads them). Redis globs are looser (`*` also crosses `}`), so
   * callers check each key with `channelOfMeta` and the channel with compileGlob.
   */
  metaScanPattern(channelGlob: string): string {
    const glob = encodeChannel(channelGlob).replace(/[[\]\\]/g, '\\$&');
    return `${escapeRedisGlob(this.metaPrefix)}${glob}}.meta`;
  }

  /** The channel whose meta key this is, or undefined for any other key. */
  channelOfMeta(key: string): string | undefined {
    return this.channelOfSuffixed(key, '}.meta');
  }

  private channelOfSuffixed(name: string, suffix: string): string | undefined {
    if (!name.startsWith(this.metaPrefix) || !name.endsWith(suffix)) return undefined;
    const encoded = name.slice(this.metaPrefix.length, name.length - suffix.length);
    // An encoded channel never holds `}`: anything else ending in the suffix is not one of ours.
    if (encoded === '' || encoded.includes('}')) return undefined;
    return decodeChannel(encoded);
  }
}
