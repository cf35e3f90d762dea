/**
 * Group commit for Store.append, shared by the stores: calls made while a commit is in
 * flight wait in a queue and are written together by the next one, so one transaction (and
 * one disk flush) carries many messages under load, and a lone call is written at once.
 */
import { RelaisError } from '../core/errors.js';

export interface PendingCall<Request, Result> {
  readonly requests: readonly Request[];
  resolve(results: readonly Result[]): void;
  reject(err: unknown): void;
}

export interface GroupCommitOptions {
  /** Requests per transaction; a larger single call still goes alone in one. */
  readonly maxBatch: number;
  /**
   * Requests waiting for a transaction beyond which new calls are refused at once with
   * STORE_UNAVAILABLE: while the database is slow or away, callers learn it instead of
   * queueing without bound.
   */
  readonly maxQueued: number;
}

/**
 * Writes one batch of calls in one transaction. Resolves with the results of each call, in
 * call order; rejecting fails every call of the batch (the transaction wrote nothing).
 */
export type CommitBatch<Request, Result> = (calls: readonly PendingCall<Request, Result>[]) => Promise<readonly (readonly Result[])[]>;

export class GroupCommit<Request, Result> {
  private queue: PendingCall<Request, Result>[] = [];
  private queued = 0;
  private inFlight: Promise<void> | undefined;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly commit: CommitBatch<Request, Result>,
    private readonly options: GroupCommitOptions,
  ) {}

  /** Queues a call for the next transaction. The caller has validated its requests. */
  submit(requests: readonly Request[]): Promise<readonly Result[]> {
    if (this.closed) return Promise.reject(new RelaisError('STORE_UNAVAILABLE', 'store closed'));
    if (this.queued + requests.length > this.options.maxQueued && this.queued > 0) {
      return Promise.reject(new RelaisError('STORE_UNAVAILABLE', `store overloaded: ${this.queued} appends waiting for the database, retry later`));
    }
    return new Promise<readonly Result[]>((resolve, reject) => {
      this.queue.push({ requests, resolve, reject });
      this.queued += requests.length;
      this.schedule();
    });
  }

  /** Requests waiting for a transaction (not counting the one in flight). */
  get pending(): number {
    return this.queued;
  }

  /** Waits for the commit in flight; rejects the calls still queued. */
  async close(): Promise<void> {
    this.closed = true;
    await this.inFlight;
    const left = this.queue.splice(0);
    this.queued = 0;
    for (const call of left) call.reject(new RelaisError('STORE_UNAVAILABLE', 'store closed before this append was written'));
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight !== undefined) return;
    this.scheduled = true;
    // The next macrotask, so that every call of this event-loop turn joins the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.next();
    });
  }

  private next(): void {
    if (this.inFlight !== undefined || this.queue.length === 0 || this.closed) return;
    let count = 0;
    let size = 0;
    for (const call of this.queue) {
      if (count > 0 && size + call.requests.length > this.options.maxBatch) break;
      count++;
      size += call.requests.length;
    }
    const batch = this.queue.splice(0, count);
    this.queued -= size;
    this.inFlight = this.run(batch).finally(() => {
      this.inFlight = undefined;
      // Through a macrotask even when calls are waiting: a synchronous database (SQLite)
      // would otherwise commit batch after batch in microtasks and starve timers and I/O.
      this.schedule();
    });
  }

  private async run(batch: readonly PendingCall<Request, Result>[]): Promise<void> {
    let results: readonly (readonly Result[])[];
    try {
      results = await this.commit(batch);
    } catch (err) {
      for (const call of batch) call.reject(err);
      return;
    }
    batch.forEach((call, i) => call.resolve(results[i] ?? []));
  }
}
