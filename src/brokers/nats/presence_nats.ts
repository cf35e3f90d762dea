import { jetstream, jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { ClientInfo } from '../../core/publication.js';
import type { PresenceManager, PresenceStats } from '../broker.js';
import { parseClientInfo } from './codec.js';
import { encodeToken, natsNames, type NatsNames } from './names.js';
import { readSubject, type SubjectMessage } from './subject_reader.js';
import { isWrongLastSequence, silentLogger, unavailable, type NatsLogger } from './util.js';
import { OpenOnce } from './open_once.js';

/** The newest message of each subject. */
function newestPerSubject(messages: readonly SubjectMessage[]): SubjectMessage[] {
  const latest = new Map<string, SubjectMessage>();
  for (const message of messages) {
    const known = latest.get(message.subject);
    if (!known || message.seq > known.seq) latest.set(message.subject, message);
  }
  return [...latest.values()];
}

export interface NatsPresenceOptions {
  /** Names the KV bucket (`<prefix>_PRESENCE`); the same prefix as the node's NatsBroker. */
  readonly prefix: string;
  /** NATS server URL(s) for a connection of its own, opened on first use. */
  readonly servers?: string | readonly string[];
  /** Or an existing connection (e.g. `NatsBroker.connection`); close() leaves it open. */
  readonly connection?: NatsConnection;
  readonly logger?: NatsLogger;
  /** JetStream replicas of the bucket. Default 1. */
  readonly replicas?: number;
  /**
   * The bucket's max age, ms: an upper bound on any entry's TTL. Entries of a dead node that
   * nobody reads are removed by JetStream after this. Default 1 hour.
   */
  readonly maxTtlMs?: number;
  readonly connectTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
}

interface Bound {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
}

interface Entry {
  readonly info: ClientInfo;
  readonly expiresAt: number;
}

/**
 * Presence in a JetStream KV bucket, `<prefix>_PRESENCE`: key `<channel token>.<client
 * token>` (see encodeToken), value JSON `{info, expiresAt}`.
 *
 * Contract (see PresenceManager): `get` and `stats` return only live entries, cluster-wide,
 * and delete the expired ones they see, so a dead node's entries vanish once their TTL has
 * passed (and from storage after the bucket's max age even if nobody looks). An expired
 * entry is deleted only if it is still the revision that was read, so a node refreshing
 * it at the same moment does not lose it. `numUsers` counts distinct user ids.
 * The bucket is in memory: presence is rebuilt by the nodes' periodic refresh after a NATS
 * restart, and a fast write path matters more than surviving one.
 */
export class NatsPresenceManager implements PresenceManager {
  private readonly names: NatsNames;
  private readonly logger: NatsLogger;
  private readonly bound = new OpenOnce(() => this.bind());
  private bucket: Promise<KV> | undefined;
  private ownConnection: NatsConnection | undefined;
  private closed = false;
  private readonly requestTimeoutMs: number;

  constructor(private readonly options: NatsPresenceOptions) {
    if (!options.connection && options.servers === undefined) throw new Error('NatsPresenceManager needs servers or a connection');
    this.names = natsNames(options.prefix);
    this.logger = options.logger ?? silentLogger;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 2000;
  }

  async add(channel: string, info: ClientInfo, ttlMs: number): Promise<void> {
    const entry: Entry = { info, expiresAt: Date.now() + ttlMs };
    try {
      await this.withBucket((kv) => kv.put(this.key(channel, info.client), JSON.stringify(entry)));
    } catch (err) {
      throw unavailable(err, 'presence not stored on NATS');
    }
  }

  async remove(channel: string, clientId: string): Promise<void> {
    try {
      await this.withBucket((kv) => kv.delete(this.key(channel, clientId)));
    } catch (err) {
      throw unavailable(err, 'presence not removed on NATS');
    }
  }

  async get(channel: string): Promise<Record<string, ClientInfo>> {
    const out: Record<string, ClientInfo> = {};
    for (const entry of await this.live(channel)) out[entry.info.client] = entry.info;
    return out;
  }

  async stats(channel: string): Promise<PresenceStats> {
    const entries = await this.live(channel);
    return { numClients: entries.length, numUsers: new Set(entries.map((e) => e.info.user)).size };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const own = this.ownConnection;
    this.ownConnection = undefined;
    await this.bound.current?.catch(() => undefined);
    if (own && !own.isClosed()) await own.drain().catch(() => own.close());
  }

  private key(channel: string, clientId: string): string {
    return `${encodeToken(channel)}.${encodeToken(clientId)}`;
  }

  /** Live entries of a channel; expired ones are deleted on the way. */
  private async live(channel: string): Promise<Entry[]> {
    const { nc, jsm } = await this.open();
    const bucket = this.names.presenceBucket;
    let msgs;
    try {
      // Every message, not the last per subject: the bucket keeps one per key (history 1)
      // anyway, and nats-server 2.9's last-per-subject start was seen leaving out keys
      // rewritten at the moment the read began. Rewrites during the read come after, and
      // the newest message of each key counts.
      msgs = newestPerSubject(
        await this.withBucket(() =>
          readSubject(nc, jsm, {
            stream: `KV_${bucket}`,
            filter: `$KV.${bucket}.${encodeToken(channel)}.*`,
            deliver: 'all',
            timeoutMs: this.requestTimeoutMs,
          }),
        ),
      );
    } catch (err) {
      throw unavailable(err, 'presence unavailable on NATS');
    }
    const now = Date.now();
    const live: Entry[] = [];
    const expired: { key: string; revision: number }[] = [];
    for (const msg of msgs) {
      const op = msg.headers?.get('KV-Operation');
      if (op === 'DEL' || op === 'PURGE') continue;
      const key = msg.subject.slice(`$KV.${bucket}.`.length);
      let entry: Entry;
      try {
        entry = parseEntry(msg.data);
      } catch (err) {
        this.logger.warn({ err, key }, 'unreadable presence entry deleted');
        expired.push({ key, revision: msg.seq });
        continue;
      }
      if (entry.expiresAt <= now) expired.push({ key, revision: msg.seq });
      else live.push(entry);
    }
    if (expired.length > 0) {
      // `previousSeq` makes the delete conditional: a refresh written since the read wins.
      const results = await Promise.allSettled(expired.map((e) => this.withBucket((kv) => kv.delete(e.key, { previousSeq: e.revision }))));
      for (const r of results) if (r.status === 'rejected' && !isWrongLastSequence(r.reason)) this.logger.warn({ err: r.reason as unknown }, 'expired presence entry not deleted');
    }
    return live;
  }

  /**
   * Runs `op` on the bucket, opening (creating) it first if needed. A failure forgets the
   * bucket handle, so that a bucket deleted under us is created again by the next call.
   */
  private async withBucket<T>(op: (kv: KV) => Promise<T>): Promise<T> {
    const { nc } = await this.open();
    if (!this.bucket) {
      const opening = new Kvm(jetstream(nc, { timeout: this.requestTimeoutMs })).create(this.names.presenceBucket, {
        history: 1,
        ttl: this.options.maxTtlMs ?? 3_600_000,
        replicas: this.options.replicas ?? 1,
        storage: StorageType.Memory,
        timeout: this.requestTimeoutMs,
      });
      this.bucket = opening;
      opening.catch(() => undefined);
    }
    const opening = this.bucket;
    try {
      return await op(await opening);
    } catch (err) {
      if (this.bucket === opening && !isWrongLastSequence(err)) this.bucket = undefined;
      throw err;
    }
  }

  /** Connects (when not given a connection), once; a failure is retried by the next call. */
  private open(): Promise<Bound> {
    if (this.closed) return Promise.reject(unavailable(new Error('closed'), 'presence manager is closed'));
    return this.bound.get();
  }

  private async bind(): Promise<Bound> {
    let nc = this.options.connection;
    let own: NatsConnection | undefined;
    try {
      if (!nc) {
        const servers = this.options.servers ?? [];
        own = await connect({
          servers: typeof servers === 'string' ? [servers] : [...servers],
          name: `relais-presence:${this.options.prefix}`,
          timeout: this.options.connectTimeoutMs ?? 5000,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1000,
        });
        nc = own;
      }
      const jsm = await jetstreamManager(nc, { timeout: this.requestTimeoutMs });
      if (this.closed) throw new Error('closed while connecting');
      this.ownConnection = own;
      return { nc, jsm };
    } catch (err) {
      if (own) await own.close().catch(() => undefined);
      throw unavailable(err, 'presence store unavailable on NATS');
    }
  }
}

function parseEntry(data: Uint8Array): Entry {
  const value: unknown = JSON.parse(new TextDecoder().decode(data));
  if (typeof value !== 'object' || value === null) throw new Error('presence entry is not an object');
  const { info, expiresAt } = value as Record<string, unknown>;
  if (typeof expiresAt !== 'number') throw new Error('presence entry without expiresAt');
  return { info: parseClientInfo(info), expiresAt };
}
