/**
 * Membership answers of the store kept for a short time, so that a room's subscribes,
 * publishes and history reads do not each cost a query. Both answers are kept: a non-member
 * hammering a room costs the store no more than a member.
 *
 * Staleness is bounded twice: every answer expires after the TTL, and every change of a
 * membership (add, remove, room deletion) invalidates it on every node (the chat sends an
 * invalidation to all nodes through the bus). An answer read from the store while an
 * invalidation arrived may predate the change: it is not kept (the generation check).
 */
export interface MemberCacheOptions {
  /** How long an answer is trusted, ms; 0 keeps nothing. */
  readonly ttlMs: number;
  /** Most answers kept; the oldest go first. 0 keeps nothing. */
  readonly maxEntries: number;
  /** The clock (Unix ms); Date.now by default. */
  readonly now?: () => number;
}

interface Entry {
  readonly member: boolean;
  readonly expiresAt: number;
}

const SEPARATOR = '\u0000';

export class MemberCache {
  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;
  private gen = 0;

  constructor(private readonly options: MemberCacheOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Changes with every invalidation: take it before asking the store, hand it to `set`. */
  get generation(): number {
    return this.gen;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The kept answer, or undefined when there is none or it expired. */
  get(room: string, user: string): boolean | undefined {
    const key = room + SEPARATOR + user;
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.member;
  }

  /** Keeps an answer read from the store, unless an invalidation came since `generation` was taken. */
  set(room: string, user: string, member: boolean, generation: number): void {
    if (generation !== this.gen || this.options.ttlMs <= 0 || this.options.maxEntries <= 0) return;
    const key = room + SEPARATOR + user;
    this.entries.delete(key);
    while (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
    this.entries.set(key, { member, expiresAt: this.now() + this.options.ttlMs });
  }

  /** Forgets the answer for one user of a room. */
  invalidate(room: string, user: string): void {
    this.gen++;
    this.entries.delete(room + SEPARATOR + user);
  }

  /** Forgets every answer of a room (it was deleted). */
  invalidateRoom(room: string): void {
    this.gen++;
    const prefix = room + SEPARATOR;
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
  }
}
