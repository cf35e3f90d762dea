import { jetstream, jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvOptions } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { RelaisError } from '../../core/errors.js';
import type { OccupancyCounter, OccupancyTransition } from '../occupancy.js';
import { decodeToken, encodeToken, natsNames, type NatsNames } from './names.js';
import { readSubject, type SubjectMessage } from './subject_reader.js';
import { isStreamMissing, isWrongLastSequence, silentLogger, unavailable, type NatsLogger } from './util.js';
import { OpenOnce } from './open_once.js';

/** Compare-and-swap attempts on one channel before a change gives up (each conflict is another node's change landing). */
const MAX_ATTEMPTS = 64;

export interface NatsOccupancyOptions {
  /** Names the buckets (`<prefix>_OCCUPANCY`, `<prefix>_OCCUPANCY_ALIVE`); the node's bus prefix. */
  readonly prefix: string;
  readonly servers: string | readonly string[];
  readonly nodeId: string;
  /** How long a node counts as alive after its last sweep, ms: the liveness bucket's max age. */
  readonly livenessMs: number;
  readonly logger?: NatsLogger;
  /** JetStream replicas of the buckets. Default 1. */
  readonly replicas?: number;
  readonly connectTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
}

interface Bound {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly kv: KV;
  readonly alive: KV;
  /** When the liveness bucket was created, ms (the server's word, read at binding). */
  readonly aliveSince: number;
}

/**
 * Channel occupancy in JetStream KV.
 *
 * `<prefix>_OCCUPANCY` (file storage, history 1) holds, per channel, `c.<token>`: the JSON
 * array of the nodes with subscribers (no key, or a delete marker, when none); per node and
 * channel an index entry `n.<node token>.<token>` (so a sweep reads a dead node's channels
 * without scanning every channel); per node a registry entry `r.<node token>`.
 * `<prefix>_OCCUPANCY_ALIVE` (file storage, max age = liveness) holds one key per node, put
 * on every sweep: a node whose key aged out is dead. Both buckets survive a NATS restart; if
 * one is deleted it is created again on the next call, and a liveness bucket younger than
 * the liveness judges nobody dead.
 *
 * Every change of a channel's set is a compare-and-swap on the key's revision (a put or
 * delete with the expected last sequence), retried on conflict: of several nodes changing one
 * channel at once, each write applies to the set the writer read, so exactly one moves it
 * from empty to non-empty (occupied) or back (vacated). A sweeper removes a dead node from
 * each of its channels the same way, so two sweepers never both report a channel.
 * A node writes its index entry before joining a channel's set and deletes it after leaving,
 * so whatever a node dies holding is indexed.
 */
export class NatsOccupancy implements OccupancyCounter {
  private readonly names: NatsNames;
  private readonly logger: NatsLogger;
  private readonly node: string;
  private readonly requestTimeoutMs: number;
  private readonly bound = new OpenOnce(() => this.bind());
  private registered = false;
  private closed = false;
  private ownConnection: NatsConnection | undefined;

  constructor(private readonly options: NatsOccupancyOptions) {
    this.names = natsNames(options.prefix);
    this.logger = options.logger ?? silentLogger;
    this.node = encodeToken(options.nodeId);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 2000;
  }

  async set(channel: string, occupied: boolean): Promise<OccupancyTransition | undefined> {
    try {
      return await this.withBound((bound) => this.record(bound, channel, occupied));
    } catch (err) {
      throw unavailable(err, 'channel occupancy not recorded on NATS');
    }
  }

  async sweep(): Promise<string[]> {
    try {
      return await this.withBound((bound) => this.sweepWith(bound));
    } catch (err) {
      throw unavailable(err, 'channel occupancy sweep failed on NATS');
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.bound.current?.catch(() => undefined);
    const own = this.ownConnection;
    this.ownConnection = undefined;
    if (own && !own.isClosed()) await own.drain().catch(() => own.close());
  }

  /**
   * Runs `op` on the open buckets. A bucket gone from under us (deleted by hand, say) drops
   * the connection, so that the next call opens (creates) the buckets again.
   */
  private async withBound<T>(op: (bound: Bound) => Promise<T>): Promise<T> {
    const opening = this.open();
    const bound = await opening;
    try {
      return await op(bound);
    } catch (err) {
      if (isStreamMissing(err) && this.bound.current === opening) {
        this.bound.forget(opening);
        this.registered = false;
        if (this.ownConnection === bound.nc) this.ownConnection = undefined;
        await bound.nc.close().catch(() => undefined);
      }
      throw err;
    }
  }

  private async record(bound: Bound, channel: string, occupied: boolean): Promise<OccupancyTransition | undefined> {
    if (!this.registered) await this.register(bound);
    const index = `n.${this.node}.${encodeToken(channel)}`;
    if (occupied) await bound.kv.put(index, '');
    const transition = await this.change(bound.kv, channel, this.options.nodeId, occupied);
    // The change is made: a failure now must not lose its transition. A stale index entry
    // only makes a sweep look at a channel this node no longer holds.
    if (!occupied) await bound.kv.delete(index).catch((err: unknown) => this.logger.warn({ err, channel }, 'channel occupancy index entry not removed'));
    return transition;
  }

  private async sweepWith(bound: Bound): Promise<string[]> {
    await this.register(bound);
    // A liveness bucket younger than the liveness has not yet heard from every live node
    // (it was deleted and created again): nobody is judged dead until it has.
    if (Date.now() - bound.aliveSince < this.options.livenessMs) return [];
    // The registry before the liveness keys: a node registers after putting its liveness
    // key, so any node read here as registered has its key visible in the read below.
    const nodes = await this.keysOf(bound, this.names.occupancyBucket, 'r.*');
    const alive = new Set(await this.keysOf(bound, this.names.occupancyAliveBucket, '*'));
    const vacated: string[] = [];
    for (const registry of nodes) {
      const token = registry.slice(2);
      if (token === this.node || alive.has(token)) continue;
      vacated.push(...(await this.clear(bound, token)));
    }
    return vacated;
  }

  /** Removes a dead node from each channel it indexed; the channels this left empty. */
  private async clear(bound: Bound, token: string): Promise<string[]> {
    const node = decodeToken(token);
    const vacated: string[] = [];
    const prefix = `n.${token}.`;
    for (const index of await this.keysOf(bound, this.names.occupancyBucket, `${prefix}*`)) {
      const channel = decodeToken(index.slice(prefix.length));
      if (node !== undefined && channel !== undefined && (await this.change(bound.kv, channel, node, false)) === 'vacated') vacated.push(channel);
      await bound.kv.delete(index);
    }
    await bound.kv.delete(`r.${token}`);
    return vacated;
  }

  /** Adds or removes `node` in the channel's set by compare-and-swap; the transition this made. */
  private async change(kv: KV, channel: string, node: string, occupied: boolean): Promise<OccupancyTransition | undefined> {
    const key = `c.${encodeToken(channel)}`;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const entry = await kv.get(key);
      const before = entry?.operation === 'PUT' ? this.parseNodes(key, entry.string()) : [];
      if (before.includes(node) === occupied) return undefined;
      const after = occupied ? [...before, node].sort() : before.filter((n) => n !== node);
      try {
        if (after.length === 0) await kv.delete(key, { previousSeq: entry?.revision ?? 0 });
        else await kv.put(key, JSON.stringify(after), { previousSeq: entry?.revision ?? 0 });
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        // Another node's change landed between the read and the write: read again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)));
        continue;
      }
      if (before.length === 0 && after.length > 0) return 'occupied';
      if (before.length > 0 && after.length === 0) return 'vacated';
      return undefined;
    }
    throw new RelaisError('BROKER_UNAVAILABLE', `channel occupancy of "${channel}" kept conflicting: ${MAX_ATTEMPTS} attempts`);
  }

  private parseNodes(key: string, text: string): string[] {
    try {
      const value: unknown = JSON.parse(text);
      if (Array.isArray(value)) return value.filter((n): n is string => typeof n === 'string');
    } catch {
      // reported below
    }
    this.logger.warn({ key }, 'unreadable channel occupancy entry: taken as empty');
    return [];
  }

  /** Liveness first, then the registry entry (see sweep). */
  private async register(bound: Bound): Promise<void> {
    await bound.alive.put(this.node, '');
    await bound.kv.put(`r.${this.node}`, '');
    this.registered = true;
  }

  /** The live keys of a bucket under a filter, read in one pass (see readSubject). */
  private async keysOf(bound: Bound, bucket: string, filter: string): Promise<string[]> {
    const messages = await readSubject(bound.nc, bound.jsm, {
      stream: `KV_${bucket}`,
      filter: `$KV.${bucket}.${filter}`,
      deliver: 'all',
      timeoutMs: this.requestTimeoutMs,
    });
    const latest = new Map<string, SubjectMessage>();
    for (const m of messages) {
      const known = latest.get(m.subject);
      if (!known || m.seq > known.seq) latest.set(m.subject, m);
    }
    const keys: string[] = [];
    for (const m of latest.values()) {
      const op = m.headers?.get('KV-Operation');
      if (op !== 'DEL' && op !== 'PURGE') keys.push(m.subject.slice(`$KV.${bucket}.`.length));
    }
    return keys;
  }

  /** Connects and opens both buckets once; a failure is retried by the next call. */
  private open(): Promise<Bound> {
    if (this.closed) return Promise.reject(new RelaisError('BROKER_UNAVAILABLE', 'channel occupancy is closed'));
    return this.bound.get();
  }

  private async bind(): Promise<Bound> {
    const servers = this.options.servers;
    const nc = await connect({
      servers: typeof servers === 'string' ? [servers] : [...servers],
      name: `relais-occupancy:${this.options.prefix}`,
      timeout: this.options.connectTimeoutMs ?? 5000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
    });
    try {
      const jsm = await jetstreamManager(nc, { timeout: this.requestTimeoutMs });
      const kvm = new Kvm(jetstream(nc, { timeout: this.requestTimeoutMs }));
      const replicas = this.options.replicas ?? 1;
      const kv = await openBucket(kvm, this.names.occupancyBucket, { history: 1, replicas, storage: StorageType.File, timeout: this.requestTimeoutMs });
      const alive = await openBucket(kvm, this.names.occupancyAliveBucket, {
        history: 1,
        replicas,
        storage: StorageType.File,
        ttl: this.options.livenessMs,
        timeout: this.requestTimeoutMs,
      });
      const created = Date.parse((await jsm.streams.info(`KV_${this.names.occupancyAliveBucket}`)).created);
      if (this.closed) throw new Error('closed while connecting');
      this.ownConnection = nc;
      return { nc, jsm, kv, alive, aliveSince: Number.isNaN(created) ? Date.now() : created };
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }
}

/** Creates the bucket, or opens it as another node created it (a different liveness, say). */
async function openBucket(kvm: Kvm, name: string, options: Partial<KvOptions>): Promise<KV> {
  try {
    return await kvm.create(name, options);
  } catch (err) {
    try {
      return await kvm.open(name);
    } catch {
      throw err;
    }
  }
}
