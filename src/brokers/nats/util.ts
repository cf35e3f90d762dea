import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { NoRespondersError, RequestError } from '@nats-io/transport-node';
import { RelaisError } from '../../core/errors.js';

/** Where the NATS broker reports what it handles itself (pino's Logger fits). */
export interface NatsLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export const silentLogger: NatsLogger = {
  warn: () => undefined,
  error: () => undefined,
};

function jsErrCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/** A publish refused because another message was appended to the subject first. */
export function isWrongLastSequence(err: unknown): boolean {
  return jsErrCode(err) === JetStreamApiCodes.StreamWrongLastSequence;
}


export function isStreamNotFound(err: unknown): boolean {
  return jsErrCode(err) === JetStreamApiCodes.StreamNotFound;
}

/**
 * The stream behind a subject is gone: the API says so, or a publish to a subject no stream
 * captures gets no responder at all (which the JetStream client reports as "not enabled",
 * the no-responders error as its cause).
 */
export function isStreamMissing(err: unknown): boolean {
  return isStreamNotFound(err) || hasNoResponders(err);
}

function hasNoResponders(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders())) return true;
  }
  return false;
}

/** Any failure of the bus as the error callers of a broker expect: temporary, with its cause. */
export function unavailable(err: unknown, message: string): RelaisError {
  if (err instanceof RelaisError) return err;
  return new RelaisError('BROKER_UNAVAILABLE', message, { cause: err });
}

/** Rejects with `what` timed out when `promise` has not settled within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Runs tasks one after the other per key (a promise chain per key), so that a node's own
 * publishes to one channel never race each other for the next offset. Chains are dropped
 * once idle, so the map only holds keys with work in flight.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

/** Random delay in [0, maxMs), spreading retries of nodes that conflicted on one channel. */
export function jitter(maxMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * maxMs)));
}
