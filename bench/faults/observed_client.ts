/**
 * One unmodified `centrifuge` SDK client subscribed to one channel, given the list of
 * instances (each connection attempt goes to the next one, as a client rotating over DNS
 * records would), recording the timeline a reconnect breakdown needs: every socket attempt
 * (start, open or failure), every SDK event with its code, every publication.
 */
import { Centrifuge, type Subscription } from 'centrifuge';
import WebSocket from 'ws';

export interface SocketAttempt {
  readonly url: string;
  readonly startedAt: number;
  openedAt: number;
  endedAt: number;
  /** How the attempt ended before it served a session: 'refused', 'timeout', 'closed <code>'; '' while open or once it served. */
  failure: string;
}

export type TimelineEvent =
  | { readonly at: number; readonly kind: 'connecting'; readonly code: number; readonly reason: string }
  | { readonly at: number; readonly kind: 'connected' }
  | { readonly at: number; readonly kind: 'error'; readonly type: string; readonly code: number; readonly message: string }
  | { readonly at: number; readonly kind: 'subscribing'; readonly code: number; readonly reason: string }
  | { readonly at: number; readonly kind: 'subscribed'; readonly wasRecovering: boolean; readonly recovered: boolean }
  | { readonly at: number; readonly kind: 'sub_error'; readonly type: string; readonly code: number; readonly message: string };

export interface Received {
  readonly at: number;
  readonly n: number;
  readonly offset: number;
  readonly epoch: string;
}

export interface ObservedClientOptions {
  readonly name: string;
  /** The instances' WebSocket URLs, read at each attempt; the first attempt goes to `first`. */
  readonly urls: () => readonly string[];
  readonly first: number;
  readonly token: string;
  readonly channel: string;
  /** SDK options left at their defaults unless given (the defaults are what applications run). */
  readonly sdk?: { minReconnectDelay?: number; maxReconnectDelay?: number; maxServerPingDelay?: number; timeout?: number };
}

export class ObservedClient {
  readonly attempts: SocketAttempt[] = [];
  readonly events: TimelineEvent[] = [];
  readonly received: Received[] = [];
  readonly centrifuge: Centrifuge;
  readonly subscription: Subscription;
  private epoch = '';

  constructor(readonly options: ObservedClientOptions) {
    const attempts = this.attempts;
    let next = options.first;
    // The SDK opens every socket through this class: each attempt picks the next instance.
    class RotatingWebSocket extends WebSocket {
      constructor(_url: string, protocols?: string | string[]) {
        const urls = options.urls();
        const url = urls[next++ % urls.length] ?? '';
        super(url, protocols);
        const attempt: SocketAttempt = { url, startedAt: Date.now(), openedAt: 0, endedAt: 0, failure: '' };
        attempts.push(attempt);
        this.once('open', () => {
          attempt.openedAt = Date.now();
        });
        this.once('error', (err: Error & { code?: string }) => {
          if (attempt.endedAt === 0) {
            attempt.endedAt = Date.now();
            if (attempt.openedAt === 0) attempt.failure = err.code === 'ECONNREFUSED' ? 'refused' : (err.code ?? err.message);
          }
        });
        this.once('close', (code: number) => {
          if (attempt.endedAt === 0) {
            attempt.endedAt = Date.now();
            if (attempt.openedAt === 0) attempt.failure = `closed ${code}`;
          }
        });
      }
    }
    this.centrifuge = new Centrifuge('ws://rotating/connection/websocket', { websocket: RotatingWebSocket, token: options.token, ...options.sdk });
    const push = (event: TimelineEvent): void => {
      this.events.push(event);
    };
    this.centrifuge.on('connecting', (ctx) => push({ at: Date.now(), kind: 'connecting', code: ctx.code, reason: ctx.reason }));
    this.centrifuge.on('connected', () => push({ at: Date.now(), kind: 'connected' }));
    this.centrifuge.on('error', (ctx) => push({ at: Date.now(), kind: 'error', type: ctx.type, code: ctx.error.code, message: ctx.error.message }));
    this.subscription = this.centrifuge.newSubscription(options.channel);
    this.subscription.on('subscribing', (ctx) => push({ at: Date.now(), kind: 'subscribing', code: ctx.code, reason: ctx.reason }));
    this.subscription.on('subscribed', (ctx) => {
      this.epoch = ctx.streamPosition?.epoch ?? this.epoch;
      push({ at: Date.now(), kind: 'subscribed', wasRecovering: ctx.wasRecovering, recovered: ctx.recovered });
    });
    this.subscription.on('error', (ctx) => push({ at: Date.now(), kind: 'sub_error', type: ctx.type, code: ctx.error.code, message: ctx.error.message }));
    this.subscription.on('publication', (ctx) => {
      const n = (ctx.data as { n?: unknown } | undefined)?.n;
      this.received.push({ at: Date.now(), n: typeof n === 'number' ? n : Number.NaN, offset: ctx.offset ?? 0, epoch: this.epoch });
    });
  }

  /** Connects and subscribes; resolves once subscribed, rejects after timeoutMs. */
  async start(timeoutMs: number): Promise<void> {
    this.subscription.subscribe();
    this.centrifuge.connect();
    await this.subscription.ready(timeoutMs);
  }

  /** The instance URL the current session runs on ('' when not connected). */
  get instance(): string {
    const last = this.attempts[this.attempts.length - 1];
    return last && last.openedAt > 0 && last.endedAt === 0 ? last.url : '';
  }

  close(): void {
    this.centrifuge.disconnect();
  }
}
