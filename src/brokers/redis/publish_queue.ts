/**
 * The publishes of one event-loop turn, sent as one pipeline (one write, one round trip) per
 * group, followed by one WAIT when publications must reach replicas before they are
 * acknowledged. On a Cluster a group is one channel (a pipeline must stay within one slot,
 * and WAIT must go to the node that took the writes); elsewhere every publication of the
 * turn goes in one group. Consecutive publications of one channel with the same history
 * settings and no idempotency key go in one PUBLISH_BATCH script call.
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
  /** Set when the publication may share a PUBLISH_BATCH call with neighbours of the same key. */
  readonly mergeKey: string | undefined;
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
    /** PUBLISH: one publication (scripts.ts). */
    private readonly single: LuaScript,
    /** PUBLISH_BATCH: several of one channel. */
    private readonly batch: LuaScript,
    private readonly acks: ReplicaAcks,
    /** Whether batches are split by channel (Cluster). */
    private readonly perChannel: boolean,
    /** PUBLISH or SPUBLISH, for the publications sent after their WAIT. */
    private readonly publishCommand: 'publish' | 'spublish',
  ) {}

  /**
   * Runs PUBLISH for one publication of `channel` in this turn's batch and resolves with its
   * reply ({offset, epoch, repeated}). `args` are PUBLISH's ARGV; its first, the send
   * command, becomes '' with replica acknowledgements: the queue then sends the frame itself
   * once the WAIT confirmed the batch.
   */
  run(channel: string, bus: string, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const scriptArgs = this.acks.replicas > 0 ? ['', ...args.slice(1)] : args;
    // ARGV 4..6: history size, TTL, meta TTL. Without an idempotency key (2 keys) the
    // publication may share a script call with its neighbours of the same channel and settings.
    const mergeKey = keys.length === 2 ? [channel, args[3], args[4], args[5]].join('\0') : undefined;
    const group = this.perChannel ? channel : '';
    return new Promise<unknown>((resolve, reject) => {
      let pending = this.groups.get(group);
      if (!pending) {
        pending = [];
        this.groups.set(group, pending);
      }
      pending.push({ bus, keys, args: scriptArgs, mergeKey, resolve, reject });
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
    for (const pending of groups.values()) void this.send(client, toCalls(pending));
  }

  private async send(client: RedisClient, calls: readonly Call[]): Promise<void> {
    try {
      let replies = await this.exec(client, calls, 'evalsha');
      for (let redirects = 0; redirects < MAX_REDIRECTS; redirects++) {
        const scriptErrors = replies.slice(0, calls.length).map(([err]) => (err instanceof Error ? err.message : ''));
        const lost = scriptErrors.flatMap((m, i) => (m.startsWith('NOSCRIPT') ? [i] : []));
        if (lost.length > 0) {
          // Redis lacks a script (restart, failover to a replica that never ran it, or the
          // batch script's first use): those calls did not run, so EVAL (which also caches
          // the script) sends them again safely. Their WAIT, sent after, covers the whole batch.
          const retried = await this.exec(
            client,
            lost.map((i) => calls[i] as Call),
            'eval',
          );
          lost.forEach((i, j) => {
            replies[i] = retried[j] ?? [new Error('no reply'), undefined];
          });
          if (this.acks.replicas > 0) replies[calls.length] = retried[lost.length] ?? [new Error('no WAIT reply'), undefined];
          break;
        }
        if (!scriptErrors.every((m) => m.startsWith('MOVED') || m.startsWith('ASK'))) break;
        // The slot moved (a Cluster failover or resharding): nothing ran; ioredis retries a
        // redirected pipeline itself only when no reply succeeded, and the WAIT did.
        if ('refreshSlotsCache' in client) client.refreshSlotsCache();
        await new Promise((resolve) => setTimeout(resolve, REDIRECT_DELAY_MS));
        replies = await this.exec(client, calls, 'evalsha');
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
      calls.forEach((call, i) => {
        const [err, reply] = replies[i] ?? [new Error('no reply'), undefined];
        if (err) {
          for (const p of call.members) p.reject(unavailable('publish', err));
          return;
        }
        if (replicaError) {
          for (const p of call.members) p.reject(replicaError);
          return;
        }
        const each = call.members.length === 1 ? [reply] : splitBatchReply(reply, call.members.length);
        call.members.forEach((p, k) => {
          if (this.acks.replicas > 0) this.sendConfirmed(client, p.bus, each[k]);
          p.resolve(each[k]);
        });
      });
    } catch (err) {
      for (const call of calls) for (const p of call.members) p.reject(unavailable('publish', err));
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

  private async exec(client: RedisClient, calls: readonly Call[], how: 'evalsha' | 'eval'): Promise<[Error | null, unknown][]> {
    const only = calls.length === 1 && this.acks.replicas === 0 ? calls[0] : undefined;
    if (only?.members.length === 1) {
      // One publication alone in its turn (a quiet channel): a plain command costs ioredis
      // less than a pipeline of one.
      const { keys, args } = only.members[0] as Pending;
      try {
        const reply: unknown =
          how === 'evalsha' ? await client.evalsha(this.single.sha, keys.length, ...keys, ...args) : await client.eval(this.single.source, keys.length, ...keys, ...args);
        return [[null, reply]];
      } catch (err) {
        if (err instanceof Error && /^(NOSCRIPT|MOVED|ASK)/.test(err.message)) return [[err, undefined]];
        throw err;
      }
    }
    const pipeline: ChainableCommander = client.pipeline();
    for (const call of calls) {
      const script = call.members.length === 1 ? this.single : this.batch;
      const args = call.members.length === 1 ? (call.members[0]?.args ?? []) : batchArgs(call.members);
      const keys = call.members[0]?.keys ?? [];
      if (how === 'evalsha') pipeline.evalsha(script.sha, keys.length, ...keys, ...args);
      else pipeline.eval(script.source, keys.length, ...keys, ...args);
    }
    if (this.acks.replicas > 0) pipeline.call('wait', this.acks.replicas, this.acks.timeoutMs);
    const replies = await pipeline.exec();
    if (!replies) throw new Error('pipeline discarded');
    return replies;
  }
}

/** One script call: one publication, or a run of mergeable ones of one channel. */
interface Call {
  readonly members: Pending[];
}

/** Runs of consecutive publications with the same merge key become one call; order is kept. */
function toCalls(pending: readonly Pending[]): Call[] {
  const calls: Call[] = [];
  let last: Call | undefined;
  let lastKey: string | undefined;
  for (const p of pending) {
    if (last && p.mergeKey !== undefined && p.mergeKey === lastKey) {
      last.members.push(p);
      continue;
    }
    last = { members: [p] };
    lastKey = p.mergeKey;
    calls.push(last);
  }
  return calls;
}

/** PUBLISH_BATCH's ARGV from PUBLISH's of each member: send command, bus, size, TTL, meta TTL, epoch, then the tails. */
function batchArgs(members: readonly Pending[]): (string | number)[] {
  const first = members[0]?.args ?? [];
  const [send = '', bus = '', , size = 0, ttl = 0, metaTtl = 0, epoch = ''] = first;
  return [send, bus, size, ttl, metaTtl, epoch, ...members.map((m) => m.args[2] ?? '')];
}

/** PUBLISH replies ({offset, epoch, 0, frame?}) for each member of a PUBLISH_BATCH reply. */
function splitBatchReply(reply: unknown, count: number): unknown[] {
  if (!Array.isArray(reply)) return new Array<unknown>(count).fill(reply);
  const [first, epoch, ...frames] = reply as unknown[];
  if (typeof first !== 'number') return new Array<unknown>(count).fill(reply);
  return Array.from({ length: count }, (_, k) => (frames.length > 0 ? [first + k, epoch, 0, frames[k]] : [first + k, epoch, 0]));
}
