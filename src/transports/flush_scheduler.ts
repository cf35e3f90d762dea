/** Something with writes queued during this turn of the event loop. */
export interface Flushable {
  flush(): void;
}

/**
 * Coalesces writes: each connection written to during one turn of the event loop is
 * flushed once, after the turn's I/O, so a burst of messages for one connection becomes
 * one socket write. One timer serves every connection.
 *
 * With a delay (`client.write_delay`), a connection's first queued message waits up to that
 * many milliseconds, and whatever is queued for it in the meantime leaves in the same write:
 * publications a node receives a few milliseconds apart (one by one from a bus, say) then
 * cost each connection one system call, not one each. Order is kept: a flush writes a
 * connection's queue in the order it was filled, and flushes run in the order connections
 * were marked.
 */
export class FlushScheduler {
  private pending: Flushable[] = [];
  private scheduled = false;
  private readonly run = (): void => {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    for (const item of batch) item.flush();
  };

  /** `delayMs`: longest wait of a queued message before its flush; 0: at the end of the turn. */
  constructor(private readonly delayMs = 0) {}

  /** Call once per connection when its queue goes from empty to non-empty. */
  mark(item: Flushable): void {
    this.pending.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      if (this.delayMs > 0) setTimeout(this.run, this.delayMs);
      else setImmediate(this.run);
    }
  }
}
