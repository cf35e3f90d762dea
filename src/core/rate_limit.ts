/**
 * Token bucket: `burst` tokens at most, refilled at `perSecond`. A command costs one token;
 * an empty bucket refuses it (RATE_LIMITED, temporary) without waiting.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now = Date.now()): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
      this.last = now;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Whether the bucket is full again (an idle key can be forgotten). */
  isFull(now = Date.now()): boolean {
    return this.tokens + ((now - this.last) * this.perSecond) / 1000 >= this.burst;
  }
}

export interface RateLimit {
  readonly burst: number;
  readonly per_second: number;
}

/** Token buckets by key (user id, API key), forgetting full ones so idle keys cost nothing. */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();
  private lastSweep = Date.now();

  constructor(private readonly limit: RateLimit) {}

  take(key: string, now = Date.now()): boolean {
    if (this.limit.per_second <= 0) return true;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = new TokenBucket(this.limit.burst, this.limit.per_second, now);
      this.buckets.set(key, bucket);
    }
    if (now - this.lastSweep > 60_000) this.sweep(now);
    return bucket.take(now);
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) if (bucket.isFull(now)) this.buckets.delete(key);
  }
}

/** A per-user limit: local to one node, or shared by the nodes of a deployment. */
export interface UserRateLimiter {
  /** Takes one token of `user`'s bucket; false when it is empty. */
  take(user: string): boolean | Promise<boolean>;
  close?(): Promise<void>;
}

/** Per-user buckets of this node alone. */
export class LocalUserRateLimiter implements UserRateLimiter {
  private readonly buckets: KeyedBuckets;

  constructor(limit: RateLimit) {
    this.buckets = new KeyedBuckets(limit);
  }

  take(user: string): boolean {
    return this.buckets.take(user);
  }
}
