import { RelaisError, toRelaisError } from '../../core/errors.js';
import type { ServerApi } from '../../server/api.js';

/** How one consumed command ended. */
export type DispatchOutcome = 'published' | 'invalid';

/** What a consumer counts, by outcome, for relais_consumer_commands_total. */
export interface ConsumerCounts {
  /** Run (published, or applied for other methods). */
  published: number;
  /** Refused for good (bad method or payload): logged, counted, and removed from the queue. */
  invalid: number;
  /** Failed for a while (bus or store unavailable): retried, in order. */
  retried: number;
}

/** Methods whose payload takes an idempotency key. */
const KEYED = new Set(['publish', 'broadcast']);

/**
 * Runs consumed commands through the server API, as Centrifugo's consumers do: `method` is an
 * API method, `payload` its params. A publish or broadcast without its own idempotency key is
 * given `key` (the row, entry or message id), so a command consumed twice (a consumer killed
 * after publishing, before acknowledging) is published once while the bus remembers the key
 * (`idempotency_ttl`).
 */
export class ApiDispatcher {
  readonly counts: ConsumerCounts = { published: 0, invalid: 0, retried: 0 };

  constructor(private readonly api: ServerApi) {}

  /**
   * Resolves 'published', or 'invalid' for a command that can never succeed (its error is not
   * temporary). Rejects with the RelaisError of a temporary failure: the caller retries the
   * same command before any later one.
   */
  async dispatch(method: string, payload: unknown, key: string): Promise<DispatchOutcome> {
    let params = payload;
    if (KEYED.has(method) && isObject(payload) && payload['idempotency_key'] === undefined) params = { ...payload, idempotency_key: key };
    try {
      await this.api.call(method, params);
      this.counts.published++;
      return 'published';
    } catch (err) {
      const error = toRelaisError(err);
      if (error.temporary) {
        this.counts.retried++;
        throw error;
      }
      this.counts.invalid++;
      return 'invalid';
    }
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A payload stored as text (Redis, NATS) or already parsed (PostgreSQL jsonb). */
export function parsePayload(payload: unknown): unknown {
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return payload;
  try {
    return JSON.parse(payload.toString()) as unknown;
  } catch (err) {
    throw new RelaisError('BAD_REQUEST', 'payload is not JSON', { cause: err });
  }
}

/** Exponential backoff of a consumer's retries: 100 ms doubling to 5 s. */
export function retryDelayMs(failures: number): number {
  return Math.min(100 * 2 ** Math.min(failures, 6), 5000);
}
