/**
 * Latency histogram with bounded memory: exact below 64 µs, then 32 linear sub-buckets per
 * power of two (relative error under 3.2%), up to 2^31 µs (about 36 minutes). Values are
 * whole microseconds; larger ones land in the last bucket.
 */
const EXACT = 64;
const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
const MAX_EXP = 30;
const BUCKETS = EXACT + (MAX_EXP - 5) * SUB;

function bucketOf(us: number): number {
  if (us < EXACT) return us < 0 ? 0 : us;
  if (us >= 2 ** 31) return BUCKETS - 1;
  const exp = 31 - Math.clz32(us);
  const sub = (us >>> (exp - SUB_BITS)) & (SUB - 1);
  return EXACT + (exp - 6) * SUB + sub;
}

/** Middle of a bucket, in microseconds. */
function valueOf(index: number): number {
  if (index < EXACT) return index;
  const exp = 6 + Math.floor((index - EXACT) / SUB);
  const sub = (index - EXACT) % SUB;
  const width = 2 ** (exp - SUB_BITS);
  return (SUB + sub) * width + width / 2;
}

/** Sparse form for IPC and JSON: [bucket index, count] pairs. */
export interface HistogramData {
  readonly buckets: readonly (readonly [number, number])[];
  readonly count: number;
  readonly sumUs: number;
  readonly minUs: number;
  readonly maxUs: number;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  sumUs = 0;
  minUs = Number.POSITIVE_INFINITY;
  maxUs = 0;

  /** Records one value in milliseconds (fractions kept to the microsecond). */
  recordMs(ms: number): void {
    const us = Math.round(ms * 1000);
    const index = bucketOf(us);
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.count++;
    this.sumUs += us;
    if (us < this.minUs) this.minUs = us;
    if (us > this.maxUs) this.maxUs = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.sumUs = 0;
    this.minUs = Number.POSITIVE_INFINITY;
    this.maxUs = 0;
  }

  merge(data: HistogramData): void {
    for (const [index, n] of data.buckets) this.counts[index] = (this.counts[index] ?? 0) + n;
    this.count += data.count;
    this.sumUs += data.sumUs;
    if (data.count > 0) {
      this.minUs = Math.min(this.minUs, data.minUs);
      this.maxUs = Math.max(this.maxUs, data.maxUs);
    }
  }

  toData(): HistogramData {
    const buckets: [number, number][] = [];
    this.counts.forEach((n, index) => {
      if (n > 0) buckets.push([index, n]);
    });
    return { buckets, count: this.count, sumUs: this.sumUs, minUs: this.count > 0 ? this.minUs : 0, maxUs: this.maxUs };
  }

  /** The value at quantile q (0..1) in milliseconds; null when empty. */
  quantileMs(q: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= rank) return Math.min(valueOf(i), this.maxUs) / 1000;
    }
    return this.maxUs / 1000;
  }
}

export interface LatencySummary {
  readonly p50: number | null;
  readonly p95: number | null;
  readonly p99: number | null;
  readonly max: number | null;
  readonly mean: number | null;
}

export function summarize(h: Histogram): LatencySummary {
  return {
    p50: h.quantileMs(0.5),
    p95: h.quantileMs(0.95),
    p99: h.quantileMs(0.99),
    max: h.count > 0 ? h.maxUs / 1000 : null,
    mean: h.count > 0 ? h.sumUs / h.count / 1000 : null,
  };
}

/** Quantile of a small array of numbers (sorted copy); null when empty. */
export function quantileOf(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? null;
}
