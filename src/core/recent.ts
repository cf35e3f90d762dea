import type { Publication, StreamPosition } from './publication.js';

/**
 * The latest publications of a channel as this node received them live, contiguous by
 * offset: a node that already follows a channel serves a subscribe's position, and most
 * recoveries, from memory — without a round trip to the bus, and without any moment where
 * a publication could fall between a history read and the live stream.
 */
export class RecentPublications {
  // Made with the first publication: a channel that is followed but quiet holds no array.
  private items: Publication[] | undefined;

  constructor(
    private readonly limit: number,
    private readonly ttlMs: number,
  ) {}

  /** Appends the next publication; `contiguous` false starts over (after a gap or a new epoch). */
  push(pub: Publication, contiguous: boolean): void {
    if (!contiguous || !this.items) this.items = [pub];
    else this.items.push(pub);
    if (this.items.length >= this.limit * 2) this.items = this.items.slice(-this.limit);
  }

  clear(): void {
    this.items = undefined;
  }

  /**
   * The publications after `since` up to `top` (the last one received), when this cache
   * holds all of them and none is past the history TTL; undefined when it cannot tell
   * (the caller asks the bus).
   */
  since(since: StreamPosition, top: StreamPosition, max: number, now = Date.now()): Publication[] | undefined {
    if (since.epoch !== '' && since.epoch !== top.epoch) return undefined;
    if (since.offset > top.offset) return undefined;
    if (since.offset === top.offset) return [];
    const items = this.items;
    const first = items?.[0];
    if (!items || !first || first.epoch !== top.epoch || since.offset + 1 < first.offset) return undefined;
    const missed = items.slice(since.offset + 1 - first.offset);
    if (missed.length > max || missed.length > this.limit) return undefined;
    if ((missed[0]?.time ?? now) <= now - this.ttlMs) return undefined;
    return missed;
  }
}
