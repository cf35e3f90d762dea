import { afterEach, describe, expect, it, vi } from 'vitest';
import { FlushScheduler, type Flushable } from './flush_scheduler.js';

/** A connection's queue as the transports keep it: marked when it goes from empty to non-empty. */
class Queue implements Flushable {
  readonly writes: string[][] = [];
  private queued: string[] | null = null;
  constructor(private readonly scheduler: FlushScheduler) {}
  write(message: string): void {
    if (this.queued) {
      this.queued.push(message);
      return;
    }
    this.queued = [message];
    this.scheduler.mark(this);
  }
  flush(): void {
    if (this.queued) this.writes.push(this.queued);
    this.queued = null;
  }
}

describe('FlushScheduler', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('without a delay, flushes each turn apart: one write per message that came alone', async () => {
    const queue = new Queue(new FlushScheduler());
    queue.write('a');
    queue.write('b');
    await new Promise((resolve) => setImmediate(resolve));
    queue.write('c');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(queue.writes).toEqual([['a', 'b'], ['c']]);
  });

  it('with a delay, messages that arrive within it leave together, in order; later ones in the next write', () => {
    vi.useFakeTimers();
    const scheduler = new FlushScheduler(10);
    const one = new Queue(scheduler);
    const two = new Queue(scheduler);
    one.write('1');
    vi.advanceTimersByTime(4);
    two.write('x');
    one.write('2');
    vi.advanceTimersByTime(5);
    one.write('3');
    expect(one.writes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(one.writes).toEqual([['1', '2', '3']]);
    expect(two.writes).toEqual([['x']]);
    one.write('4');
    vi.advanceTimersByTime(9);
    expect(one.writes).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(one.writes).toEqual([['1', '2', '3'], ['4']]);
  });
});
