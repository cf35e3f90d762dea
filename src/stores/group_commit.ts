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
  /**
   * Transactions in flight at once (default 1). Above 1, a batch starts only once the one
   * before it has said `committing()`: everything but its COMMIT is done, so its offsets are
   * taken, and the rows it locked keep the next batch waiting until it commits.
   */
  readonly maxInFlight?: number;
}

/**
 * Writes one batch of calls in one transaction. Resolves with the results of each call, in
 * call order; rejecting fails every call of the batch (the transaction wrote nothing).
 * `committing()`, called when only the commit itself is left, lets the next batch start.
 */
export type CommitBatch<Request, Result> = (
  calls: readonly PendingCall<Request, Result>[],
  committing: () => void,
) => Promise<readonly (readonly Result[])[]>;

export class GroupCommit<Request, Result> {
  private queue: PendingCall<Request, Result>[] = [];
  private queued = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** False while the newest batch in flight has not reached its commit. */
  private open = true;
  private scheduled = false;
  private closed = false;
  private readonly maxInFlight: number;

  constructor(
    private readonly commit: CommitBatch<Request, Result>,
    private readonly options: GroupCommitOptions,
  ) {
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  }

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

  /** Requests waiting for a transaction (not counting those in flight). */
  get pending(): number {
    return this.queued;
  }

  /** Waits for the commits in flight; rejects the calls still queued. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.inFlight);
    const left = this.queue.splice(0);
    this.queued = 0;
    for (const call of left) call.reject(new RelaisError('STORE_UNAVAILABLE', 'store closed before this append was written'));
  }

  private canStart(): boolean {
    return this.open && this.inFlight.size < this.maxInFlight && this.queue.length > 0 && !this.closed;
  }

  private schedule(): void {
    if (this.scheduled || !this.canStart()) return;
    this.scheduled = true;
    // The next macrotask, so that every call of this event-loop turn joins the batch; and,
    // after a commit, so that a synchronous database (SQLite) committing batch after batch
    // does not starve timers and I/O.
    setImmediate(() => {
      this.scheduled = false;
      this.next();
    });
  }

  private next(): void {
    if (!this.canStart()) return;
    let count = 0;
    let size = 0;
    for (const call of this.queue) {
      if (count > 0 && size + call.requests.length > this.options.maxBatch) break;
      count++;
      size += call.requests.length;
    }
    const batch = this.queue.splice(0, count);
    this.queued -= size;
    this.open = false;
    let opened = false;
    const openGate = (): void => {
      if (opened) return;
      opened = true;
      this.open = true;
      this.schedule();
    };
    const run = this.run(batch, openGate).finally(() => {
      this.inFlight.delete(run);
      openGate();
      this.schedule();
    });
    this.inFlight.add(run);
  }

  private async run(batch: readonly PendingCall<Request, Result>[], committing: () => void): Promise<void> {
    let results: readonly (readonly Result[])[];
    try {
      results = await this.commit(batch, committing);
    } catch (err) {
      for (const call of batch) call.reject(err);
      return;
    }
    batch.forEach((call, i) => call.resolve(results[i] ?? []));
  }
}
