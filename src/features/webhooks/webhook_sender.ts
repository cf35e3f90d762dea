import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';

/** One lifecycle event as the backend receives it (docs/webhooks.md). */
export type WebhookEventBody = { readonly type: string; readonly time: number; readonly node: string } & Readonly<Record<string, unknown>>;

export interface WebhookSenderOptions {
  readonly url: string;
  /** HMAC-SHA256 key of the X-Relais-Signature header. */
  readonly secret: string;
  readonly batchSize: number;
  readonly batchWaitMs: number;
  readonly queueSize: number;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly backoffMinMs: number;
  readonly backoffMaxMs: number;
  readonly logger: Logger;
}

/** Events counted by outcome, for the relais_webhook_events_total metric. */
export interface WebhookCounts {
  /** Acknowledged by the backend (a 2xx answer). */
  sent: number;
  /** Dropped after `maxAttempts` failed tries, or refused by the backend with a 4xx other than 408 and 429. */
  failed: number;
  /** Dropped at once because the queue was full. */
  dropped: number;
}

/** `sha256=<hex>`: the X-Relais-Signature value of a body. */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/**
 * Sends lifecycle events to the app's backend, best effort: a bounded queue, batches of up to
 * `batchSize` events POSTed as `{"events": [...]}` one request at a time (events leave in the
 * order queued), each signed, retried with exponential backoff on network errors, timeouts,
 * 5xx, 408 and 429. A batch keeps its X-Relais-Delivery id across retries, so a backend can
 * tell a retry from a new batch. What is still queued when the process dies is lost.
 */
export class WebhookSender {
  readonly counts: WebhookCounts = { sent: 0, failed: 0, dropped: 0 };
  private readonly queue: WebhookEventBody[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private closing = false;

  constructor(private readonly options: WebhookSenderOptions) {}

  get queued(): number {
    return this.queue.length;
  }

  enqueue(event: WebhookEventBody): void {
    if (this.queue.length >= this.options.queueSize) {
      this.counts.dropped++;
      return;
    }
    this.queue.push(event);
    if (this.queue.length >= this.options.batchSize) this.flushSoon(0);
    else this.flushSoon(this.options.batchWaitMs);
  }

  /** Sends what is queued (retrying within `graceMs`), then stops. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    const deadline = Date.now() + graceMs;
    while (this.queue.length > 0 && Date.now() < deadline) {
      this.pumping ??= this.pump(deadline);
      await this.pumping;
    }
    await this.pumping;
  }

  private flushSoon(ms: number): void {
    if (this.pumping || this.closing) return;
    if (this.timer && ms > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pumping = this.pump(Number.POSITIVE_INFINITY);
    }, ms);
  }

  private async pump(deadline: number): Promise<void> {
    try {
      while (this.queue.length > 0 && Date.now() < deadline) {
        const batch = this.queue.splice(0, this.options.batchSize);
        await this.deliver(batch, deadline);
      }
    } finally {
      this.pumping = undefined;
      if (this.queue.length > 0 && !this.closing) this.flushSoon(this.options.batchWaitMs);
    }
  }

  private async deliver(batch: WebhookEventBody[], deadline: number): Promise<void> {
    const body = JSON.stringify({ events: batch });
    const headers = {
      'content-type': 'application/json',
      'x-relais-signature': webhookSignature(this.options.secret, body),
      'x-relais-delivery': randomUUID(),
    };
    let backoff = this.options.backoffMinMs;
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.post(body, headers);
      if (outcome === 'ok') {
        this.counts.sent += batch.length;
        return;
      }
      if (outcome === 'refused' || attempt >= this.options.maxAttempts || Date.now() + backoff >= deadline) {
        this.counts.failed += batch.length;
        this.options.logger.warn({ events: batch.length, attempts: attempt, outcome }, 'webhook batch dropped');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, this.options.backoffMaxMs);
    }
  }

  private async post(body: string, headers: Record<string, string>): Promise<'ok' | 'retry' | 'refused'> {
    try {
      const response = await fetch(this.options.url, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.options.timeoutMs) });
      await response.body?.cancel();
      if (response.ok) return 'ok';
      return response.status >= 500 || response.status === 408 || response.status === 429 ? 'retry' : 'refused';
    } catch {
      return 'retry';
    }
  }
}
