/**
 * A lean subscriber speaking the client protocol (JSON) by hand over one WebSocket: one
 * channel, publications kept as plain numbers so that thousands of them cost little. It
 * behaves as the SDKs do where it matters for delivery guarantees: answers pings, goes back
 * through recovery on an unsubscribe push with code >= 2500 (insufficient state), retries a
 * subscribe refused with a temporary error, and — when asked to — reconnects after its
 * connection ends and recovers from the last position it holds.
 */
import WebSocket from 'ws';
import { waitFor } from './clients.js';

export interface LeanSubscriberOptions {
  /** Where to connect; called again for every reconnection (a load balancer's URL, say). */
  readonly url: () => string;
  readonly token: string;
  readonly channel: string;
  /** Reconnect when the connection ends (unless closed by `close`), recovering from the last position. */
  readonly reconnect?: boolean;
  /** Recover from this position on the first subscribe too. */
  readonly since?: { readonly offset: number; readonly epoch: string };
}

/** A subscribe result as the subscriber saw it. */
export interface LeanSubscribed {
  readonly at: number;
  readonly wasRecovering: boolean;
  readonly recovered: boolean;
  /** The stream position after the result's publications. */
  readonly offset: number;
  readonly epoch: string;
  readonly replayed: number;
}

interface Frame {
  id?: number;
  error?: { code: number; message: string; temporary?: boolean };
  connect?: { client: string };
  subscribe?: { epoch?: string; offset?: number; recovered?: boolean; was_recovering?: boolean; publications?: Pub[] };
  push?: { channel?: string; pub?: Pub; unsubscribe?: { code: number; reason?: string } };
}

interface Pub {
  data?: unknown;
  offset?: number;
}

export class LeanSubscriber {
  /** Offsets of the publications received, in arrival order. */
  readonly offsets: number[] = [];
  /** The epoch each publication belongs to, as the subscriber knows it (from its last subscribe result). */
  readonly epochs: string[] = [];
  /** `data.n` of each publication (NaN for other data). */
  readonly values: number[] = [];
  readonly subscribedEvents: LeanSubscribed[] = [];
  readonly closes: { at: number; code: number; reason: string }[] = [];
  readonly unsubscribes: { at: number; code: number }[] = [];
  readonly errors: { at: number; code: number; message: string }[] = [];
  /** WebSocket frames that carried more than one protocol message (Relais sends one per frame). */
  multiMessageFrames = 0;
  clientId = '';
  private ws: WebSocket | undefined;
  private nextId = 1;
  private connectId = 0;
  private subscribeId = 0;
  private epoch = '';
  private offset = 0;
  private positioned = false;
  private subscribedNow = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly options: LeanSubscriberOptions) {
    if (options.since) {
      this.offset = options.since.offset;
      this.epoch = options.since.epoch;
      this.positioned = true;
    }
  }

  /** Connects and subscribes; resolves once subscribed. */
  static async open(options: LeanSubscriberOptions, timeoutMs = 10_000): Promise<LeanSubscriber> {
    const subscriber = new LeanSubscriber(options);
    subscriber.dial();
    try {
      await subscriber.untilSubscribed(timeoutMs);
    } catch (err) {
      subscriber.close();
      throw err;
    }
    return subscriber;
  }

  get channel(): string {
    return this.options.channel;
  }

  /** Subscribed right now (connected, and the last subscribe succeeded). */
  get subscribed(): boolean {
    return this.subscribedNow;
  }

  get position(): { offset: number; epoch: string } {
    return { offset: this.offset, epoch: this.epoch };
  }

  get count(): number {
    return this.offsets.length;
  }

  async untilSubscribed(timeoutMs = 10_000): Promise<void> {
    await waitFor(() => this.subscribedNow, timeoutMs, `lean subscriber on ${this.options.channel} subscribed`);
  }

  /** Resolves once the last publication received has `offset` (in the current epoch). */
  async untilOffset(offset: number, timeoutMs: number): Promise<void> {
    await waitFor(() => this.offset >= offset, timeoutMs, `lean subscriber at offset ${offset} (is at ${this.offset}, ${this.count} received)`);
  }

  close(): void {
    this.stopped = true;
    this.subscribedNow = false;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.terminate();
  }

  private dial(): void {
    if (this.stopped) return;
    const ws = new WebSocket(this.options.url());
    this.ws = ws;
    ws.on('open', () => {
      this.connectId = this.nextId++;
      this.send({ id: this.connectId, connect: { token: this.options.token, name: 'lean' } });
    });
    ws.on('message', (data: Buffer) => {
      const lines = data.toString().split('\n').filter((line) => line.trim() !== '');
      if (lines.length > 1) this.multiMessageFrames++;
      for (const line of lines) this.handle(JSON.parse(line) as Frame);
    });
    ws.on('error', () => undefined);
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.subscribedNow = false;
      this.closes.push({ at: Date.now(), code, reason: reason.toString() });
      if (!this.stopped && this.options.reconnect) this.later(() => this.dial(), 100 + Math.random() * 150);
    });
  }

  private later(fn: () => void, ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) fn();
    }, ms);
  }

  private send(command: Record<string, unknown>): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(command));
  }

  private sendSubscribe(): void {
    this.subscribeId = this.nextId++;
    const recover = this.positioned ? { recover: true, offset: this.offset, epoch: this.epoch } : {};
    this.send({ id: this.subscribeId, subscribe: { channel: this.options.channel, ...recover } });
  }

  private handle(frame: Frame): void {
    if (frame.id === undefined && frame.push === undefined) {
      this.send({}); // a server ping: pong
      return;
    }
    if (frame.id !== undefined) {
      if (frame.error) {
        this.errors.push({ at: Date.now(), code: frame.error.code, message: frame.error.message });
        if (frame.id === this.subscribeId && frame.error.temporary) this.later(() => this.sendSubscribe(), 200);
        else if (frame.id === this.connectId) this.ws?.close();
        return;
      }
      if (frame.id === this.connectId && frame.connect) {
        this.clientId = frame.connect.client;
        this.sendSubscribe();
      } else if (frame.id === this.subscribeId && frame.subscribe) {
        this.onSubscribed(frame.subscribe);
      }
      return;
    }
    const push = frame.push;
    if (!push || push.channel !== this.options.channel) return;
    if (push.pub) {
      if (this.subscribedNow) this.deliver(push.pub);
    } else if (push.unsubscribe) {
      this.subscribedNow = false;
      this.unsubscribes.push({ at: Date.now(), code: push.unsubscribe.code });
      if (push.unsubscribe.code >= 2500) this.later(() => this.sendSubscribe(), 50);
    }
  }

  private onSubscribed(result: NonNullable<Frame['subscribe']>): void {
    const publications = result.publications ?? [];
    this.epoch = result.epoch ?? '';
    for (const pub of publications) this.deliver(pub);
    this.offset = result.offset ?? this.offset;
    this.positioned = result.epoch !== undefined;
    this.subscribedNow = true;
    this.subscribedEvents.push({
      at: Date.now(),
      wasRecovering: result.was_recovering === true,
      recovered: result.recovered === true,
      offset: this.offset,
      epoch: this.epoch,
      replayed: publications.length,
    });
  }

  private deliver(pub: Pub): void {
    const offset = pub.offset ?? 0;
    const n = (pub.data as { n?: unknown } | undefined)?.n;
    this.offsets.push(offset);
    this.epochs.push(this.epoch);
    this.values.push(typeof n === 'number' ? n : Number.NaN);
    this.offset = offset;
  }
}
