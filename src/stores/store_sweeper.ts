/**
 * Retention for persistent channels: removes messages past their namespace's TTL or size and
 * forgets expired idempotency keys, a bounded amount per call, so that the composition root
 * can schedule it without a sweep ever holding the database for long.
 */
import type { Store, StoreLogger } from './store.js';

/** A channel's retention; 0 keeps forever (ttlMs) or any number (size). */
export interface RetentionPolicy {
  readonly ttlMs: number;
  readonly size: number;
}

export interface StoreSweeperOptions {
  readonly store: Store;
  /** The retention of a channel (from its namespace), or undefined to leave it alone. */
  readonly retention: (channel: string) => RetentionPolicy | undefined;
  /** How long idempotency keys are kept (config `idempotency_ttl`). */
  readonly idempotencyTtlMs: number;
  /** Channels looked at per sweep. Default 500. */
  readonly channelsPerSweep?: number;
  /** Messages removed per sweep at most, all channels together. Default 10,000. */
  readonly messagesPerSweep?: number;
  /** Idempotency keys forgotten per sweep at most. Default 10,000. */
  readonly keysPerSweep?: number;
  readonly now?: () => number;
  readonly logger?: StoreLogger;
}

export interface SweepReport {
  readonly channels: number;
  readonly removed: number;
  readonly keysForgotten: number;
  /** True when this sweep reached the last channel: the next one starts from the first again. */
  readonly wrapped: boolean;
}

export class StoreSweeper {
  private cursor = '';
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;
  private failing = false;
  private readonly channelsPerSweep: number;
  private readonly messagesPerSweep: number;
  private readonly keysPerSweep: number;
  private readonly now: () => number;

  constructor(private readonly options: StoreSweeperOptions) {
    this.channelsPerSweep = options.channelsPerSweep ?? 500;
    this.messagesPerSweep = options.messagesPerSweep ?? 10_000;
    this.keysPerSweep = options.keysPerSweep ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /**
   * One bounded step: the next `channelsPerSweep` channels after where the last sweep stopped,
   * then expired idempotency keys. A channel with more to remove than the budget left is
   * where the next sweep resumes.
   */
  async sweep(): Promise<SweepReport> {
    const { store } = this.options;
    const now = this.now();
    const channels = await store.listChannels(this.cursor, this.channelsPerSweep);
    let removed = 0;
    let visited = 0;
    // Listing is after the cursor, exclusive: resuming at a channel means the one before it.
    let previous = this.cursor;
    let stoppedAt: string | undefined;
    for (const summary of channels) {
      const budget = this.messagesPerSweep - removed;
      if (budget <= 0) {
        stoppedAt = previous;
        break;
      }
      visited++;
      const policy = this.options.retention(summary.channel);
      if (policy !== undefined && (policy.ttlMs > 0 || policy.size > 0)) {
        const limit = Math.min(budget, 10_000);
        const count = await store.trim(summary.channel, {
          minTime: policy.ttlMs > 0 ? Math.max(0, now - policy.ttlMs) : 0,
          maxOffset: policy.size > 0 ? Math.max(0, summary.position.offset - policy.size) : 0,
          limit,
        });
        removed += count;
        if (count === limit) {
          stoppedAt = previous;
          break;
        }
      }
      previous = summary.channel;
    }
    const wrapped = stoppedAt === undefined && channels.length < this.channelsPerSweep;
    this.cursor = stoppedAt ?? (wrapped ? '' : previous);
    const keysForgotten = await store.forgetIdempotencyKeys(Math.max(0, now - this.options.idempotencyTtlMs), this.keysPerSweep);
    return { channels: visited, removed, keysForgotten, wrapped };
  }

  /** Sweeps every `intervalMs` until stop(); failures are logged, never thrown. */
  start(intervalMs: number): void {
    this.stopped = false;
    const tick = (): void => {
      this.running = this.sweep().then(
        () => {
          if (this.failing) this.options.logger?.info({}, 'store retention sweep works again');
          this.failing = false;
        },
        (err: unknown) => {
          // Once per outage: the store's own errors already say what is wrong.
          if (!this.failing) this.options.logger?.warn({ err }, 'store retention sweep failed; retrying at the next interval');
          this.failing = true;
        },
      );
      void this.running.finally(() => {
        if (!this.stopped) {
          this.timer = setTimeout(tick, intervalMs);
          this.timer.unref();
        }
      });
    };
    this.timer = setTimeout(tick, intervalMs);
    this.timer.unref();
  }

  /** Stops the schedule and waits for a sweep in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
