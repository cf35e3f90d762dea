import { createHash } from 'node:crypto';
import { StorageType, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { StreamPosition } from '../../core/publication.js';
import { encodeToken, type NatsNames } from './names.js';

/**
 * Results of idempotent publishes, in the KV bucket `<prefix>_IDEMPOTENCY`: key
 * `<channel token>.<sha256 of the key>`, value `{offset, epoch, expiresAt}`.
 *
 * Two mechanisms, each covering what the other cannot:
 * - this bucket answers a repeat made after the first publish completed, for as long as the
 *   publish asked (`idempotentResultTtlMs`, up to the bucket's max age);
 * - JetStream's `Nats-Msg-Id` (the same hash) refuses to store a repeat made while the
 *   first is in flight, or after the first was stored but its ack was lost (the publisher
 *   timed out and never wrote the result here): within the stream's duplicate window.
 */
export class IdempotencyStore {
  private bucket: Promise<KV> | undefined;

  constructor(
    private readonly js: JetStreamClient,
    private readonly names: NatsNames,
    private readonly maxTtlMs: number,
    private readonly replicas: number,
    private readonly timeoutMs: number,
  ) {}

  /** The `Nats-Msg-Id` of a keyed publish: one per channel and key, of bounded size. */
  msgId(channel: string, key: string): string {
    return `${encodeToken(channel)}.${hash(key)}`;
  }

  async lookup(channel: string, key: string): Promise<StreamPosition | undefined> {
    const entry = await this.withBucket((kv) => kv.get(this.key(channel, key)));
    if (!entry || entry.operation !== 'PUT' || entry.value.length === 0) return undefined;
    const value: unknown = entry.json();
    if (typeof value !== 'object' || value === null) return undefined;
    const { offset, epoch, expiresAt } = value as Record<string, unknown>;
    if (typeof offset !== 'number' || typeof epoch !== 'string' || typeof expiresAt !== 'number') return undefined;
    return expiresAt > Date.now() ? { offset, epoch } : undefined;
  }

  async remember(channel: string, key: string, position: StreamPosition, ttlMs: number): Promise<void> {
    const value = { offset: position.offset, epoch: position.epoch, expiresAt: Date.now() + ttlMs };
    await this.withBucket((kv) => kv.put(this.key(channel, key), JSON.stringify(value)));
  }

  /** A failure forgets the bucket handle, so that a deleted bucket is created again next time. */
  private async withBucket<T>(op: (kv: KV) => Promise<T>): Promise<T> {
    const opening = this.open();
    try {
      return await op(await opening);
    } catch (err) {
      if (this.bucket === opening) this.bucket = undefined;
      throw err;
    }
  }

  private key(channel: string, key: string): string {
    return `${encodeToken(channel)}.${hash(key)}`;
  }

  /** Opens (creating on first use) the bucket; a failed open is retried by the next call. */
  private open(): Promise<KV> {
    if (!this.bucket) {
      const opening = new Kvm(this.js).create(this.names.idempotencyBucket, {
        history: 1,
        ttl: this.maxTtlMs,
        replicas: this.replicas,
        storage: StorageType.File,
        timeout: this.timeoutMs,
      });
      this.bucket = opening;
      opening.catch(() => {
        if (this.bucket === opening) this.bucket = undefined;
      });
    }
    return this.bucket;
  }
}

function hash(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('base64url');
}
