/**
 * Publishing through the HTTP server API with bounded concurrency, keeping what each
 * publication's answer was (acknowledged with `{offset, epoch}`, or refused with an error),
 * and checking what subscribers received against it: each acknowledged publication once, in
 * offset order, with the data it was published with.
 */
import { sleep } from './clients.js';

/** Where a publish goes: one instance's base URL and its API key. */
export interface ApiTarget {
  readonly httpUrl: string;
  readonly apiKey: string;
}

export interface ApiError {
  readonly code: number;
  readonly message: string;
  readonly temporary?: boolean;
}

/** One attempt at publishing `n`. */
export interface Attempt {
  readonly startedAt: number;
  readonly endedAt: number;
  /** HTTP status; 0 when the request failed below HTTP (connection refused or reset). */
  readonly status: number;
  readonly error?: ApiError;
  readonly failure?: string;
}

export interface Outcome {
  readonly n: number;
  readonly attempts: Attempt[];
  /** Set once a publish of `n` was acknowledged. */
  ack?: { offset: number; epoch: string; at: number };
}

export interface PublishLoopOptions {
  readonly channel: string;
  /** Where each attempt goes; called for every attempt. */
  readonly target: () => ApiTarget;
  /** Requests in flight at once. */
  readonly concurrency: number;
  /** Retry a refused publish (same idempotency key) until acknowledged, for up to this long. */
  readonly retryForMs?: number;
  /** Idempotency keys `<prefix>-<n>`; without it no key is sent. */
  readonly idempotencyPrefix?: string;
  /** Pause of each worker between publications, ms; a function gives each pause its own. */
  readonly paceMs?: number | (() => number);
  /** The `n` of each publication; 1, 2, ... by default. Several loops share one source to keep `n` unique. */
  readonly numbers?: () => number;
}

/**
 * Publishes `{n}` for n = 1, 2, ... with `concurrency` requests in flight, until `count`
 * are done or `stop` is called. With several in flight the bus may order them differently
 * from n: the acknowledged offset is what counts.
 */
export class PublishLoop {
  readonly outcomes: Outcome[] = [];
  private started = 0;
  private stopping = false;
  private running: Promise<void> | undefined;

  constructor(private readonly options: PublishLoopOptions) {}

  /** Starts publishing up to `count` publications (Infinity: until stopped). */
  start(count = Number.POSITIVE_INFINITY): this {
    const workers = Array.from({ length: this.options.concurrency }, async () => {
      while (!this.stopping && this.started < count) {
        const n = this.options.numbers?.() ?? this.started + 1;
        this.started++;
        const outcome: Outcome = { n, attempts: [] };
        this.outcomes.push(outcome);
        await this.publish(outcome);
        const pace = typeof this.options.paceMs === 'function' ? this.options.paceMs() : this.options.paceMs;
        if (pace) await sleep(pace);
      }
    });
    this.running = Promise.all(workers).then(() => undefined);
    return this;
  }

  /** Resolves when every publication started has its final answer. */
  async done(): Promise<void> {
    await this.running;
  }

  /** Starts no more publications; resolves when those in flight are answered. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  get acked(): Outcome[] {
    return this.outcomes.filter((o) => o.ack !== undefined);
  }

  /** Acknowledged publications by `epoch:offset`, the data (`n`) each was published with. */
  ackedByPosition(): Map<string, number> {
    const map = new Map<string, number>();
    for (const o of this.outcomes) {
      if (!o.ack) continue;
      const key = positionKey(o.ack.epoch, o.ack.offset);
      if (map.has(key)) throw new Error(`two acknowledged publications share position ${key}: n=${map.get(key)} and n=${o.n}`);
      map.set(key, o.n);
    }
    return map;
  }

  private async publish(outcome: Outcome): Promise<void> {
    const deadline = Date.now() + (this.options.retryForMs ?? 0);
    for (;;) {
      const attempt = await this.attempt(outcome.n);
      outcome.attempts.push(attempt.attempt);
      if (attempt.ack) {
        outcome.ack = attempt.ack;
        return;
      }
      if (this.options.retryForMs === undefined || Date.now() > deadline) return;
      await sleep(50);
    }
  }

  private async attempt(n: number): Promise<{ attempt: Attempt; ack?: Outcome['ack'] }> {
    const target = this.options.target();
    const body: Record<string, unknown> = { channel: this.options.channel, data: { n } };
    if (this.options.idempotencyPrefix) body['idempotency_key'] = `${this.options.idempotencyPrefix}-${n}`;
    const startedAt = Date.now();
    try {
      const response = await fetch(`${target.httpUrl}/api/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': target.apiKey },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(15_000),
      });
      const reply = (await response.json()) as { result?: { offset?: number; epoch?: string }; error?: ApiError };
      const endedAt = Date.now();
      if (response.status === 200 && reply.result && typeof reply.result.offset === 'number') {
        return {
          attempt: { startedAt, endedAt, status: 200 },
          ack: { offset: reply.result.offset, epoch: reply.result.epoch ?? '', at: endedAt },
        };
      }
      return { attempt: { startedAt, endedAt, status: response.status, ...(reply.error ? { error: reply.error } : {}) } };
    } catch (err) {
      return { attempt: { startedAt, endedAt: Date.now(), status: 0, failure: err instanceof Error ? `${err.name}: ${err.message}` : String(err) } };
    }
  }
}

export function positionKey(epoch: string, offset: number): string {
  return `${epoch}:${offset}`;
}

/** What one subscriber received, in arrival order. */
export interface Delivery {
  readonly name: string;
  readonly offsets: readonly number[];
  readonly values: readonly number[];
  /** Its subscribe results, shown with a problem. */
  readonly subscribedEvents?: readonly { readonly wasRecovering: boolean; readonly recovered: boolean; readonly offset: number; readonly replayed?: number }[];
}

function describeSubscribes(delivery: Delivery): string {
  const events = delivery.subscribedEvents;
  if (!events || events.length === 0) return '';
  const shown = events.map((e) => `${e.wasRecovering ? (e.recovered ? 'recovered' : 'NOT recovered') : 'fresh'} to ${e.offset}${e.replayed !== undefined ? ` (${e.replayed} replayed)` : ''}`);
  return ` [subscribes: ${shown.join(', ')}]`;
}

export interface DeliveryCheck {
  readonly delivered: number;
  readonly duplicated: number;
  readonly lost: number;
  readonly outOfOrder: number;
  readonly wrongData: number;
  /** The first problem found, for the failure message. */
  readonly firstProblem: string | undefined;
}

/**
 * Checks one subscriber against the publications of one epoch, `expected[offset - 1]` being
 * the `n` published at `offset`: it must receive offsets 1..expected.length exactly once, in
 * order, each with its own data. A subscriber that came and went checks a window instead:
 * `from` (the position it subscribed at: it must get from + 1 on) to `to` (the last offset
 * it must have).
 */
export function checkDelivery(delivery: Delivery, expected: readonly number[], window: { from?: number; to?: number } = {}): DeliveryCheck {
  const from = window.from ?? 0;
  const to = window.to ?? expected.length;
  const seen = new Uint8Array(expected.length + 1);
  let duplicated = 0;
  let outOfOrder = 0;
  let wrongData = 0;
  let firstProblem: string | undefined;
  const note = (problem: string): void => {
    firstProblem ??= `${delivery.name}: ${problem}${describeSubscribes(delivery)}`;
  };
  let previous = from;
  for (let i = 0; i < delivery.offsets.length; i++) {
    const offset = delivery.offsets[i] ?? 0;
    const value = delivery.values[i];
    if (offset <= from || offset > expected.length) {
      wrongData++;
      note(`offset ${offset} at position ${i} was never acknowledged`);
      continue;
    }
    if (seen[offset]) {
      duplicated++;
      note(`offset ${offset} received again at position ${i}`);
    }
    seen[offset] = 1;
    if (offset <= previous) {
      outOfOrder++;
      note(`offset ${offset} after ${previous} at position ${i}`);
    } else if (offset !== previous + 1) {
      note(`jump from offset ${previous} to ${offset} at position ${i}`);
    }
    previous = Math.max(previous, offset);
    if (value !== expected[offset - 1]) {
      wrongData++;
      note(`offset ${offset} carried n=${value}, published with n=${expected[offset - 1]}`);
    }
  }
  let lost = 0;
  for (let offset = from + 1; offset <= to; offset++) {
    if (!seen[offset]) {
      lost++;
      if (lost === 1) note(`offset ${offset} never received`);
    }
  }
  return { delivered: delivery.offsets.length, duplicated, lost, outOfOrder, wrongData, firstProblem };
}

/**
 * The acknowledged publications of one epoch as `expected` for checkDelivery: index
 * offset - 1 holds the `n` published there. Fails when the offsets are not exactly 1..N.
 */
export function expectedSequence(loops: PublishLoop | readonly PublishLoop[]): { epoch: string; expected: number[] } {
  const acked = (Array.isArray(loops) ? loops : [loops]).flatMap((loop: PublishLoop) => loop.acked);
  const epochs = new Set(acked.map((o) => o.ack?.epoch));
  if (epochs.size > 1) throw new Error(`acknowledged publications span ${epochs.size} epochs`);
  const expected: number[] = new Array<number>(acked.length).fill(-1);
  for (const o of acked) {
    const offset = o.ack?.offset ?? 0;
    if (offset < 1 || offset > acked.length || expected[offset - 1] !== -1) {
      throw new Error(`acknowledged offsets are not 1..${acked.length}: offset ${offset} for n=${o.n}`);
    }
    expected[offset - 1] = o.n;
  }
  return { epoch: [...epochs][0] ?? '', expected };
}

/** Sums checks into the figures a test prints. */
export function totals(checks: readonly DeliveryCheck[]): { subscribers: number; delivered: number; duplicated: number; lost: number; outOfOrder: number; wrongData: number } {
  const sum = { subscribers: checks.length, delivered: 0, duplicated: 0, lost: 0, outOfOrder: 0, wrongData: 0 };
  for (const c of checks) {
    sum.delivered += c.delivered;
    sum.duplicated += c.duplicated;
    sum.lost += c.lost;
    sum.outOfOrder += c.outOfOrder;
    sum.wrongData += c.wrongData;
  }
  return sum;
}

/** A subscriber's deliveries with the epoch of each, and its subscribe results. */
export interface EpochDelivery extends Delivery {
  readonly epochs: readonly string[];
  readonly subscribedEvents: readonly { readonly wasRecovering: boolean; readonly recovered: boolean; readonly offset: number; readonly epoch: string }[];
}

export interface EpochCheck extends DeliveryCheck {
  /** Acknowledged publications not received, each announced by a `recovered: false` covering it. */
  readonly announcedLost: number;
  /** Of those, how many belong to the last epoch (published after the lineage changed, before the subscriber rejoined). */
  readonly announcedLostLastEpoch: number;
  /** `recovered: false` results the subscriber got. */
  readonly notices: number;
  /** Received publications whose publish was refused while in flight when the bus died (outcome unknown to the publisher). */
  readonly refusedButDelivered: number;
}

/**
 * Checks one subscriber across a bus outage that may have lost history (a new epoch). From
 * its first subscribe position on, every acknowledged publication must be received once,
 * in order within its epoch, with its data — or be announced lost: covered by a
 * `recovered: false` subscribe result whose position is in the same epoch at or after it,
 * or in a later epoch (the lineage it belonged to is gone). Anything received must have
 * been acknowledged, or refused while in flight at the moment the bus died (`inFlight`).
 */
export function checkAcrossEpochs(delivery: EpochDelivery, acked: ReadonlyMap<string, number>, epochOrder: readonly string[], inFlight: ReadonlySet<number>): EpochCheck {
  let firstProblem: string | undefined;
  const note = (problem: string): void => {
    firstProblem ??= `${delivery.name}: ${problem}${describeSubscribes(delivery)}`;
  };
  const rank = (epoch: string): number => epochOrder.indexOf(epoch);
  const start = delivery.subscribedEvents[0];
  if (!start) throw new Error(`${delivery.name} never subscribed`);
  const seen = new Set<string>();
  const seenValues = new Set<number>();
  let duplicated = 0;
  let outOfOrder = 0;
  let wrongData = 0;
  let refusedButDelivered = 0;
  let lastEpochRank = -1;
  let lastOffset = 0;
  for (let i = 0; i < delivery.offsets.length; i++) {
    const epoch = delivery.epochs[i] ?? '';
    const offset = delivery.offsets[i] ?? 0;
    const value = delivery.values[i] ?? Number.NaN;
    const key = positionKey(epoch, offset);
    if (seen.has(key) || seenValues.has(value)) {
      duplicated++;
      note(`${key} (n=${value}) received again at position ${i}`);
    }
    seen.add(key);
    seenValues.add(value);
    const r = rank(epoch);
    if (r < lastEpochRank || (r === lastEpochRank && offset <= lastOffset)) {
      outOfOrder++;
      note(`${key} after ${epochOrder[lastEpochRank] ?? '?'}:${lastOffset} at position ${i}`);
    }
    if (r !== lastEpochRank) lastOffset = 0;
    lastEpochRank = Math.max(lastEpochRank, r);
    lastOffset = Math.max(lastOffset, offset);
    const published = acked.get(key);
    if (published === value) continue;
    if (published === undefined && inFlight.has(value)) {
      refusedButDelivered++;
      continue;
    }
    wrongData++;
    note(`${key} carried n=${value}, ${published === undefined ? 'a position no acknowledged publish had' : `published with n=${published}`}`);
  }
  const notices = delivery.subscribedEvents.filter((e) => e.wasRecovering && !e.recovered);
  let lost = 0;
  let announcedLost = 0;
  let announcedLostLastEpoch = 0;
  for (const [key, n] of acked) {
    const colon = key.lastIndexOf(':');
    const epoch = key.slice(0, colon);
    const offset = Number(key.slice(colon + 1));
    if (epoch === start.epoch && offset <= start.offset) continue; // published before it subscribed
    if (seen.has(key)) continue;
    const announced = notices.some((e) => (e.epoch === epoch && offset <= e.offset) || (e.epoch !== '' && rank(e.epoch) > rank(epoch)));
    if (announced) {
      announcedLost++;
      if (epoch === epochOrder.at(-1)) announcedLostLastEpoch++;
    } else {
      lost++;
      note(`${key} (n=${n}) never received and never announced lost`);
    }
  }
  return {
    delivered: delivery.offsets.length,
    duplicated,
    lost,
    outOfOrder,
    wrongData,
    firstProblem,
    announcedLost,
    announcedLostLastEpoch,
    notices: notices.length,
    refusedButDelivered,
  };
}
