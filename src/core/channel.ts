import type { NamespaceOptions, RelaisConfig } from '../config/schema.js';
import { RelaisError } from './errors.js';

/** A channel name checked against the configuration. */
export interface ResolvedChannel {
  readonly name: string;
  /** Namespace name; '' for channels without a prefix. */
  readonly namespace: string;
  /** The part after `namespace:` (the whole name without a namespace): the owner of personal channels. */
  readonly rest: string;
  readonly options: NamespaceOptions;
}

/** A glob over the channels of one namespace, as SSE streams subscribe with it (`chat:*`). */
export interface ResolvedPattern {
  readonly pattern: string;
  readonly namespace: string;
  readonly options: NamespaceOptions;
  readonly matcher: GlobMatcher;
}

// Letters, digits and a few separators: no spaces, quotes, semicolons or glob characters.
const CHANNEL_CHARS = /^[A-Za-z0-9_.:@=,#+~/-]+$/;
const PATTERN_CHARS = /^[A-Za-z0-9_.:@=,#+~/*?-]+$/;

export type GlobMatcher = (channel: string) => boolean;

/** Compiles a glob where `*` matches any run of characters and `?` one character. */
export function compileGlob(pattern: string): GlobMatcher {
  if (!pattern.includes('*') && !pattern.includes('?')) return (channel) => channel === pattern;
  const source = pattern.replace(/[.+^${}()|[\]\\/]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  const regex = new RegExp(`^${source}$`, 's');
  return (channel) => regex.test(channel);
}

export function isPattern(channel: string): boolean {
  return channel.includes('*') || channel.includes('?');
}

/** Channel names: validation, namespace lookup, personal channels. */
export class ChannelResolver {
  private readonly config: Readonly<RelaisConfig>;
  private readonly maxLength: number;

  constructor(config: Readonly<RelaisConfig>) {
    this.config = config;
    this.maxLength = config.client.channel_max_length;
  }

  /** Throws CHANNEL_INVALID for a malformed name, UNKNOWN_CHANNEL for an unconfigured namespace. */
  resolve(name: unknown): ResolvedChannel {
    if (typeof name !== 'string' || name === '') throw new RelaisError('CHANNEL_INVALID', 'channel name required');
    if (name.length > this.maxLength) {
      throw new RelaisError('CHANNEL_INVALID', `channel name longer than ${this.maxLength} characters`);
    }
    if (!CHANNEL_CHARS.test(name)) {
      throw new RelaisError('CHANNEL_INVALID', 'channel name may only use letters, digits and _ . : @ = , # + ~ / -');
    }
    if (name.startsWith('@')) {
      throw new RelaisError('CHANNEL_INVALID', 'a name starting with @ addresses a user; publish to it, do not subscribe');
    }
    return this.lookup(name);
  }

  /** Resolves a glob such as `chat:*`: literal namespace, allow_wildcard on. */
  resolvePattern(pattern: unknown): ResolvedPattern {
    if (typeof pattern !== 'string' || pattern === '') throw new RelaisError('CHANNEL_INVALID', 'channel pattern required');
    if (pattern.length > this.maxLength) throw new RelaisError('CHANNEL_INVALID', `pattern longer than ${this.maxLength} characters`);
    if (!PATTERN_CHARS.test(pattern)) throw new RelaisError('CHANNEL_INVALID', 'pattern may only use channel characters and * ?');
    const colon = pattern.indexOf(':');
    const namespace = colon > 0 ? pattern.slice(0, colon) : '';
    if (isPattern(namespace)) throw new RelaisError('CHANNEL_INVALID', 'the namespace of a pattern must be literal, as in chat:*');
    const options = this.namespaceOptions(namespace, pattern);
    if (!options.allow_wildcard) {
      throw new RelaisError('FORBIDDEN', `namespace "${namespace || '(default)'}" does not allow wildcard subscriptions`);
    }
    return { pattern, namespace, options, matcher: compileGlob(pattern) };
  }

  /**
   * The channel a publish addresses: `@alice` is alice's personal channel
   * (`<personal_namespace>:alice`), any other name is itself.
   */
  resolvePublishTarget(name: unknown): ResolvedChannel {
    if (typeof name === 'string' && name.startsWith('@') && name.length > 1) {
      return this.resolve(`${this.config.personal_namespace}:${name.slice(1)}`);
    }
    return this.resolve(name);
  }

  /** A channel's namespace options without validating its name (the delivery path); undefined for an unknown namespace. */
  optionsOf(name: string): NamespaceOptions | undefined {
    const colon = name.indexOf(':');
    return colon > 0 ? this.config.namespaces[name.slice(0, colon)] : this.config.default_namespace;
  }

  private lookup(name: string): ResolvedChannel {
    const colon = name.indexOf(':');
    if (colon === 0) throw new RelaisError('CHANNEL_INVALID', 'channel name starts with ":" (empty namespace)');
    const namespace = colon > 0 ? name.slice(0, colon) : '';
    const rest = colon > 0 ? name.slice(colon + 1) : name;
    if (rest === '') throw new RelaisError('CHANNEL_INVALID', 'channel name is empty after its namespace');
    return { name, namespace, rest, options: this.namespaceOptions(namespace, name) };
  }

  private namespaceOptions(namespace: string, name: string): NamespaceOptions {
    if (namespace === '') return this.config.default_namespace;
    const options = this.config.namespaces[namespace];
    if (!options) throw new RelaisError('UNKNOWN_CHANNEL', `unknown namespace "${namespace}" in channel "${name}"`);
    return options;
  }
}

/**
 * Whether a namespace keeps history, and so offsets, epochs and recovery: in the bus
 * (`history_size` and `history_ttl`), or in the durable store (`persist`).
 */
export function keepsHistory(options: NamespaceOptions): boolean {
  return options.persist || (options.history_size > 0 && options.history_ttl > 0);
}

/**
 * How much history a namespace keeps, wherever it is kept: the bus's window, or the store's
 * retention (persist_size and persist_ttl, 0 meaning no bound).
 */
export function historyRetention(options: NamespaceOptions): { size: number; ttlMs: number } {
  if (options.persist) {
    return {
      size: options.persist_size > 0 ? options.persist_size : Number.POSITIVE_INFINITY,
      ttlMs: options.persist_ttl > 0 ? options.persist_ttl : Number.POSITIVE_INFINITY,
    };
  }
  return { size: options.history_size, ttlMs: options.history_ttl };
}

/** Publications of a channel a node keeps in memory to answer recoveries without a read. */
const PERSISTENT_MEMORY_SIZE = 1000;
const PERSISTENT_MEMORY_TTL_MS = 24 * 3_600_000;

/**
 * How many of a channel's latest publications a node keeps in memory, and for how long: the
 * history window, or for a persistent channel whose store keeps everything, a fixed window.
 * Never more than one recovery can replay.
 */
export function memoryWindow(options: NamespaceOptions): { size: number; ttlMs: number } {
  const max = options.recovery_max_publications;
  if (options.history_size > 0 && options.history_ttl > 0) return { size: Math.min(options.history_size, max), ttlMs: options.history_ttl };
  return { size: Math.min(PERSISTENT_MEMORY_SIZE, max), ttlMs: options.persist_ttl > 0 ? options.persist_ttl : PERSISTENT_MEMORY_TTL_MS };
}
