/**
 * One `centrifuge` SDK client subscribed to one channel, recording what a delivery check
 * needs: each publication's offset and data, the epoch it belongs to (from the last
 * `subscribed` event), every `subscribed` event (recovered or not) and every reconnection
 * with its code. The SDK is unmodified; its reconnect and recovery are what is tested.
 */
import type { Centrifuge, Subscription } from 'centrifuge';
import WebSocket from 'ws';
import { waitFor } from './clients.js';
import { NEWEST_SDK, type SdkRelease } from './sdk_versions.js';

export interface SdkSubscribed {
  readonly at: number;
  readonly wasRecovering: boolean;
  readonly recovered: boolean;
  readonly offset: number;
  readonly epoch: string;
}

export class SdkSubscriber {
  readonly offsets: number[] = [];
  readonly epochs: string[] = [];
  readonly values: number[] = [];
  readonly subscribedEvents: SdkSubscribed[] = [];
  /** Every time the client went back to connecting: the close code and reason it got. */
  readonly reconnects: { at: number; code: number; reason: string }[] = [];
  /** Every time the subscription went back to subscribing (unsubscribe push 2500, ...). */
  readonly resubscribes: { at: number; code: number }[] = [];
  readonly centrifuge: Centrifuge;
  readonly subscription: Subscription;
  private epoch = '';
  private offset = 0;

  private constructor(
    readonly name: string,
    url: string,
    token: string,
    readonly channel: string,
    readonly sdk: SdkRelease,
  ) {
    this.centrifuge = new sdk.Centrifuge(url, { websocket: WebSocket, token, minReconnectDelay: 50, maxReconnectDelay: 500, timeout: 5000 });
    this.centrifuge.on('connecting', (ctx) => this.reconnects.push({ at: Date.now(), code: ctx.code, reason: ctx.reason }));
    this.subscription = this.centrifuge.newSubscription(channel, { minResubscribeDelay: 50, maxResubscribeDelay: 500 });
    this.subscription.on('subscribing', (ctx) => this.resubscribes.push({ at: Date.now(), code: ctx.code }));
    this.subscription.on('subscribed', (ctx) => {
      this.epoch = ctx.streamPosition?.epoch ?? '';
      this.offset = ctx.streamPosition?.offset ?? this.offset;
      this.subscribedEvents.push({
        at: Date.now(),
        wasRecovering: ctx.wasRecovering,
        recovered: ctx.recovered,
        offset: ctx.streamPosition?.offset ?? 0,
        epoch: this.epoch,
      });
    });
    this.subscription.on('publication', (ctx) => {
      const n = (ctx.data as { n?: unknown } | undefined)?.n;
      this.offsets.push(ctx.offset ?? 0);
      this.offset = ctx.offset ?? this.offset;
      this.epochs.push(this.epoch);
      this.values.push(typeof n === 'number' ? n : Number.NaN);
    });
  }

  /** Connects to `url` (an instance or a load balancer) and subscribes; resolves once subscribed. */
  static async open(name: string, url: string, token: string, channel: string, timeoutMs = 10_000, sdk: SdkRelease = NEWEST_SDK): Promise<SdkSubscriber> {
    const subscriber = new SdkSubscriber(name, url, token, channel, sdk);
    subscriber.subscription.subscribe();
    subscriber.centrifuge.connect();
    try {
      await subscriber.subscription.ready(timeoutMs);
    } catch (err) {
      subscriber.close();
      throw new Error(`${name} did not subscribe to ${channel}: ${JSON.stringify(err)}`);
    }
    // The first `connecting` is the initial connection, not a reconnection.
    subscriber.reconnects.splice(0);
    subscriber.resubscribes.splice(0);
    return subscriber;
  }

  get count(): number {
    return this.offsets.length;
  }

  /** The position the subscription holds: its last subscribe result, or the last publication since. */
  get position(): { offset: number; epoch: string } {
    return { offset: this.offset, epoch: this.epoch };
  }

  async untilOffset(offset: number, timeoutMs: number): Promise<void> {
    await waitFor(() => this.offset >= offset, timeoutMs, `${this.name} at offset ${offset} (is at ${this.offset}, ${this.count} received)`);
  }

  close(): void {
    this.centrifuge.disconnect();
  }
}
