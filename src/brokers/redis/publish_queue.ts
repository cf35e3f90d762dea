/**
 * The publish scripts of one event-loop turn, sent as one pipeline (one write, one round
 * trip) per group, followed by one WAIT when publications must reach replicas before they
 * are acknowledged. On a Cluster a group is one channel (a pipeline must stay within one
 * slot, and WAIT must go to the node that took the writes); elsewhere every publication of
 * the turn goes in one group.
 */
import type { ChainableCommander } from 'ioredis';
import { RelaisError } from '../../core/errors.js';
import type { RedisClient } from './connection.js';
import { unavailable } from './connection.js';
import type { LuaScript } from './scripts.js';

export interface ReplicaAcks {
  /** Replicas that must confirm a history write before its publish resolves; 0: no WAIT. */
  readonly replicas: number;
  /** Longest WAIT, ms: past it the publishes of the batch reject (temporary). */
  readonly timeoutMs: number;
}

/** Redirections (MOVED, ASK) followed for one batch, REDIRECT_DELAY_MS apart. */
const MAX_REDIRECTS = 5;
const REDIRECT_DELAY_MS = 100;

interface Pending {
  /** The bus channel the publication goes out on once replicas confirmed it (WAIT mode). */
  readonly bus: string;
  readonly keys: readonly string[];
  readonly args: readonly (string | number)[];
  readonly resolve: (reply: unknown) => void;
  readonly reject: (err: unknown) => void;
}

export class PublishQueue {
  private groups = new Map<string, Pending[]>();
  private scheduled = false;

  constructor(
    private readonly client: () => RedisClient,
    private readonly script: LuaScript,
    private readonly acks: ReplicaAcks,
    /** Whether batches are split by channel (Cluster). */
    private readonly perChannel: boolean,
    /** PUBLISH or SPUBLISH, for the publications sent after their WAIT. */
    private readonly publishCommand: 'publish' | 'spublish',
  ) {}

  /**
   * Runs the script for one publication of `channel` in this turn's batch; resolves with its
   * reply. `args[0]` is the script's send command: with replica acknowledgements it is
   * replaced by '' and the queue sends the frame itself once the WAIT confirmed the batch.
   */
  run(channel: string, bus: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const scriptArgs = this.acks.replicas > 0 ? ['', ...args.slice(1)] : args;
    const group = this.perChannel ? channel : '';
    return new Promise<unknown>((resolve, reject) => {
      let pending = this.groups.get(group);
      if (!pending) {
        pending = [];
        this.groups.set(group, pending);
      }
      pending.push({ bus, keys, args: scriptArgs, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // After the current turn's microtasks: every publish of this turn joins the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const groups = this.groups;
    this.groups = new Map();
    let client: RedisClient;
    try {
      client = this.client();
    } catch (err) {
      for (const pending of groups.values()) for (const p of pending) p.reject(err);
      return;
    }
    for (const pending of groups.values()) void this.send(client, pending);
  }

  private async send(client: RedisClient, batch: readonly Pending[]): Promise<void> {
    try {
      let how: 'evalsha' | 'eval' = 'evalsha';
      let replies = await this.exec(client, batch, how);
      for (let redirects = 0; redirects < MAX_REDIRECTS; redirects++) {
        const scriptErrors = replies.slice(0, batch.length).map(([err]) => (err instanceof Error ? err.message : ''));
        if (scriptErrors.every((m) => m.startsWith('NOSCRIPT'))) {
          // Redis lost its script cache (restart, failover to a replica that never ran it): no
          // script of the batch ran, so sending them all again with EVAL is safe.
          how = 'eval';
        } else if (scriptErrors.every((m) => m.startsWith('MOVED') || m.startsWith('ASK'))) {
          // The slot moved (a Cluster failover or resharding): nothing ran; ioredis retries a
          // redirected pipeline itself only when no reply succeeded, and the WAIT did.
          if ('refreshSlotsCache' in client) client.refreshSlotsCache();
          await new Promise((resolve) => setTimeout(resolve, REDIRECT_DELAY_MS));
        } else {
          break;
        }
        replies = await this.exec(client, batch, how);
      }
      const waitReply = this.acks.replicas > 0 ? replies.pop() : undefined;
      let replicaError: RelaisError | undefined;
      if (waitReply) {
        const [err, confirmed] = waitReply;
        if (err) replicaError = unavailable('publish (WAIT)', err);
        else if (typeof confirmed !== 'number' || confirmed < this.acks.replicas) {
          replicaError = new RelaisError(
            'BROKER_UNAVAILABLE',
            `redis publish not confirmed by ${this.acks.replicas} replica(s) within ${this.acks.timeoutMs} ms (confirmed: ${String(confirmed)}); it may have been published: retry with the same idempotency key`,
          );
        }
      }
      batch.forEach((p, i) => {
        const [err, reply] = replies[i] ?? [new Error('no reply'), undefined];
        if (err) p.reject(unavailable('publish', err));
        else if (replicaError) p.reject(replicaError);
        else {
          if (this.acks.replicas > 0) this.sendConfirmed(client, p.bus, reply);
          p.resolve(reply);
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(unavailable('publish', err));
    }
  }

  /**
   * Sends a publication the replicas confirmed. Sent in batch order on the connection of its
   * slot, so the bus keeps offset order. Not awaited: the publication is in history already,
   * and should the send fail, subscribers' nodes see the gap at the next one and read it there.
   */
  private sendConfirmed(client: RedisClient, bus: string, reply: unknown): void {
    if (!Array.isArray(reply)) return;
    const frame: unknown = reply[3];
    if (typeof frame !== 'string') return; // an idempotent repeat: sent the first time
    client.call(this.publishCommand, bus, frame).catch(() => undefined);
  }

  private async exec(client: RedisClient, batch: readonly Pending[], how: 'evalsha' | 'eval'): Promise<[Error | null, unknown][]> {
    const pipeline: ChainableCommander = client.pipeline();
    for (const p of batch) {
      if (how === 'evalsha') pipeline.evalsha(this.script.sha, p.keys.length, ...p.keys, ...p.args);
      else pipeline.eval(this.script.source, p.keys.length, ...p.keys, ...p.args);
    }
    if (this.acks.replicas > 0) pipeline.call('wait', this.acks.replicas, this.acks.timeoutMs);
    const replies = await pipeline.exec();
    if (!replies) throw new Error('pipeline discarded');
    return replies;
  }
}
