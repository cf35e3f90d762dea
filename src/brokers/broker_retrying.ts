import { RelaisError } from '../core/errors.js';
import type { JsonText } from '../core/json.js';
import type { ClientInfo, StreamPosition } from '../core/publication.js';
import type { Broker, BrokerEventHandler, ControlMessage, HistoryQuery, HistoryResult, PublishOptions } from './broker.js';

export interface RetryingBrokerOptions {
  readonly kind: Broker['kind'];
  /** Builds a fresh broker for each start attempt (a broker that failed to start is spent). */
  readonly create: () => Broker;
  readonly retryMs: number;
  readonly onRetryFailure?: (err: unknown, attempt: number) => void;
  readonly onStarted?: (attempt: number) => void;
}

/**
 * A broker that starts degraded: when the bus is unreachable at boot, `start` resolves
 * anyway and the broker keeps trying in the background. Until a start succeeds every
 * operation fails with BROKER_UNAVAILABLE (temporary) — nothing is accepted that could be
 * lost — and `ping` fails, so the node reports not ready. Channels and patterns subscribed
 * meanwhile are subscribed on the bus once it is up, and the node is told to resync. A
 * pattern the started broker refuses for good (NOT_AVAILABLE: Redis sharded pub/sub) is
 * dropped from that interest rather than failing the start.
 */
export class RetryingBroker implements Broker {
  readonly kind: Broker['kind'];
  private inner: Broker | undefined;
  private handler: BrokerEventHandler | undefined;
  private readonly interest = new Set<string>();
  private readonly patternInterest = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private attempts = 0;

  constructor(private readonly options: RetryingBrokerOptions) {
    this.kind = options.kind;
  }

  async start(handler: BrokerEventHandler): Promise<void> {
    this.handler = handler;
    await this.attempt();
  }

  private async attempt(): Promise<void> {
    if (this.closed || this.inner || !this.handler) return;
    this.attempts++;
    const candidate = this.options.create();
    try {
      await candidate.start(this.handler);
      if (this.interest.size > 0) await candidate.subscribe([...this.interest]);
      for (const pattern of [...this.patternInterest]) {
        try {
          await candidate.subscribePattern(pattern);
        } catch (err) {
          if (!isRefusal(err)) throw err;
          this.patternInterest.delete(pattern);
        }
      }
    } catch (err) {
      await candidate.close().catch(() => undefined);
      this.options.onRetryFailure?.(err, this.attempts);
      if (!this.closed) {
        this.timer = setTimeout(() => void this.attempt(), this.options.retryMs);
        this.timer.unref();
      }
      return;
    }
    if (this.closed) {
      await candidate.close();
      return;
    }
    this.inner = candidate;
    this.options.onStarted?.(this.attempts);
    // Whatever was subscribed while down may have missed publications.
    if (this.attempts > 1) this.handler.handleResync();
  }

  private get broker(): Broker {
    if (!this.inner) throw new RelaisError('BROKER_UNAVAILABLE', 'message bus not connected yet, retry');
    return this.inner;
  }

  publish(channel: string, data: JsonText, options: PublishOptions): Promise<StreamPosition> {
    return this.call(() => this.broker.publish(channel, data, options));
  }

  publishJoin(channel: string, info: ClientInfo): Promise<void> {
    return this.call(() => this.broker.publishJoin(channel, info));
  }

  publishLeave(channel: string, info: ClientInfo): Promise<void> {
    return this.call(() => this.broker.publishLeave(channel, info));
  }

  publishControl(message: ControlMessage): Promise<void> {
    return this.call(() => this.broker.publishControl(message));
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    for (const c of channels) this.interest.add(c);
    if (this.inner) await this.inner.subscribe(channels);
    else throw new RelaisError('BROKER_UNAVAILABLE', 'message bus not connected yet, retry');
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    for (const c of channels) this.interest.delete(c);
    if (this.inner) await this.inner.unsubscribe(channels);
  }

  async subscribePattern(pattern: string): Promise<void> {
    this.patternInterest.add(pattern);
    if (!this.inner) throw new RelaisError('BROKER_UNAVAILABLE', 'message bus not connected yet, retry');
    try {
      await this.inner.subscribePattern(pattern);
    } catch (err) {
      // Refused for good: remembering it would only fail every later start.
      if (isRefusal(err)) this.patternInterest.delete(pattern);
      throw err;
    }
  }

  async unsubscribePattern(pattern: string): Promise<void> {
    this.patternInterest.delete(pattern);
    if (this.inner) await this.inner.unsubscribePattern(pattern);
  }

  history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    return this.call(() => this.broker.history(channel, query));
  }

  removeHistory(channel: string): Promise<void> {
    return this.call(() => this.broker.removeHistory(channel));
  }

  streamChannels(pattern: string): Promise<string[]> {
    return this.call(() => this.broker.streamChannels(pattern));
  }

  async ping(): Promise<void> {
    const inner = this.broker;
    await inner.ping?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inner?.close();
  }

  private call<T>(op: () => Promise<T>): Promise<T> {
    try {
      return op();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}

/** An error that retrying cannot fix (a RelaisError whose code is not temporary). */
function isRefusal(err: unknown): boolean {
  return err instanceof RelaisError && !err.temporary;
}
