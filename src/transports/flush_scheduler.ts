/** Something with writes queued during this turn of the event loop. */
export interface Flushable {
  flush(): void;
}

/**
 * Coalesces writes: each connection written to during one turn of the event loop is
 * flushed once, after the turn's I/O, so a burst of messages for one connection becomes
 * one socket write. One setImmediate serves every connection.
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

  /** Call once per connection when its queue goes from empty to non-empty. */
  mark(item: Flushable): void {
    this.pending.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }
}
