import type { Publication, StreamPosition } from './publication.js';

export interface OrderedDeliveryOptions {
  /** How long a publication waits for a missing predecessor before the gap is fetched, ms. */
  readonly holdMs: number;
  /** Publications held for one channel beyond which the gap is fetched at once. */
  readonly maxHeld: number;
  /** Receives each channel's publications in offset order. Must not throw. */
  deliver(channel: string, publication: Publication): void;
  /**
   * The publications of `epoch` with offsets in [from, to] still in history, in any order;
   * fewer when some are gone.
   */
  fetch(channel: string, epoch: string, from: number, to: number): Promise<readonly Publication[]>;
  /** Offsets [from, to] could not be delivered on this node (gone from history, or the fetch failed). */
  onLoss(channel: string, from: number, to: number, cause: unknown): void;
}

interface ChannelOrder {
  /** Lineage being delivered; undefined until the first position or publication is known. */
  epoch: string | undefined;
  /** The lineage before the last epoch change: its late arrivals are dropped. */
  retiredEpoch: string | undefined;
  /** Next offset to deliver; undefined while the starting position is being read. */
  next: number | undefined;
  /** The position could not be read: continue from whatever arrives first. */
  adoptFirst: boolean;
  /** No position to wait for (see `trackFromArrivals`): `timer` ends the hold. */
  awaitingArrivals: boolean;
  /** Publications that arrived ahead of `next`, by offset. */
  readonly held: Map<number, Publication>;
  timer: NodeJS.Timeout | undefined;
  filling: boolean;
  /** Bumped on every restart so that a fetch started before it is ignored. */
  generation: number;
}

/**
 * Puts each channel's publications back in offset order on one node. Used wherever offsets
 * are assigned by one authority but the fan-out is a separate message sent by each publisher:
 * the NATS broker (JetStream assigns) and the node for persistent channels (the store assigns).
 *
 * Why it is needed, on NATS: offsets are assigned by JetStream (one authority), but the fan-out of a
 * publication is a separate core NATS publish made by its publisher after the JetStream
 * ack. Two nodes publishing to one channel at once can therefore have their fan-out
 * messages cross: node A gets offset 5 acked, node B gets 6, and B's fan-out can reach a
 * subscriber first. Core NATS keeps per-publisher order only.
 *
 * What it does: a publication whose predecessor has not arrived yet is held back; the
 * predecessor normally follows within microseconds (it was acked earlier). If it has not
 * come within `holdMs` (its publisher died between the ack and the fan-out, or the message
 * was lost during a reconnect), the missing offsets are fetched from history, which holds
 * every acknowledged publication. Only what history no longer has is skipped (reported to
 * `onLoss`); the hub then sees the gap and sends that channel's subscribers through recovery.
 * Publications without history (offset 0) are not ordered: they pass straight through.
 */
export class OrderedDelivery {
  private readonly channels = new Map<string, ChannelOrder>();

  constructor(private readonly options: OrderedDeliveryOptions) {}

  /**
   * Starts (or restarts, after a reconnect) ordering for a channel: arrivals are held until
   * `start` gives the position to continue from.
   */
  track(channel: string): void {
    const st = this.channels.get(channel);
    if (!st) {
      this.channels.set(channel, {
        epoch: undefined,
        retiredEpoch: undefined,
        next: undefined,
        adoptFirst: false,
        awaitingArrivals: false,
        held: new Map(),
        timer: undefined,
        filling: false,
        generation: 0,
      });
      return;
    }
    this.clearTimer(st);
    st.next = undefined;
    st.adoptFirst = false;
    st.awaitingArrivals = false;
    st.generation++;
  }

  /**
   * Starts ordering for a channel met mid-stream, without a position to start from (a
   * channel received through a pattern subscription). A predecessor whose fan-out crossed
   * the first arrival may still come, so arrivals are held for `holdMs`, then ordering
   * starts at the lowest of them. An arrival at offset 1 has no predecessor: it starts
   * ordering at once. No-op for a channel already tracked.
   */
  trackFromArrivals(channel: string): void {
    if (this.channels.has(channel)) return;
    this.track(channel);
    const st = this.channels.get(channel);
    if (!st) return;
    st.awaitingArrivals = true;
    st.timer = setTimeout(() => {
      st.timer = undefined;
      if (this.channels.get(channel) === st && st.awaitingArrivals) this.startAtFirstArrival(channel);
    }, this.options.holdMs);
    st.timer.unref();
  }

  has(channel: string): boolean {
    return this.channels.has(channel);
  }

  /**
   * The stream's position read after the subscription was active: everything after it
   * reaches this node through the fan-out. Undefined when the channel has no stream yet.
   * Arrivals held meanwhile at or below the position are dropped (published before the
   * subscription), unless `keepArrivals`: then ordering starts at the lowest of them, for
   * a channel whose arrivals were already wanted (a pattern matched it before).
   */
  start(channel: string, position: StreamPosition | undefined, keepArrivals = false): void {
    const st = this.channels.get(channel);
    if (!st || st.next !== undefined) return;
    st.next = position ? position.offset + 1 : 1;
    if (position && position.epoch !== '') {
      if (st.epoch !== undefined && st.epoch !== position.epoch) st.retiredEpoch = st.epoch;
      st.epoch = position.epoch;
    }
    if (keepArrivals) {
      for (const pub of st.held.values()) if (pub.offset < st.next && (st.epoch === undefined || pub.epoch === st.epoch)) st.next = pub.offset;
    }
    const early = [...st.held.values()].sort((a, b) => a.offset - b.offset);
    st.held.clear();
    for (const pub of early) this.accept(channel, st, pub);
  }

  /**
   * The starting position could not be read (the bus failed again): continue from the
   * first publication that arrives. Order holds from there; what came before is left to
   * recovery.
   */
  startAtFirstArrival(channel: string): void {
    const st = this.channels.get(channel);
    if (!st || st.next !== undefined) return;
    if (st.awaitingArrivals) {
      st.awaitingArrivals = false;
      this.clearTimer(st);
    }
    const early = [...st.held.values()].sort((a, b) => a.offset - b.offset);
    st.held.clear();
    st.adoptFirst = true;
    for (const pub of early) this.accept(channel, st, pub);
  }

  push(channel: string, pub: Publication): void {
    if (pub.offset === 0) {
      this.options.deliver(channel, pub);
      return;
    }
    const st = this.channels.get(channel);
    if (st) this.accept(channel, st, pub);
  }

  untrack(channel: string): void {
    const st = this.channels.get(channel);
    if (!st) return;
    this.clearTimer(st);
    this.channels.delete(channel);
  }

  close(): void {
    for (const st of this.channels.values()) this.clearTimer(st);
    this.channels.clear();
  }

  private accept(channel: string, st: ChannelOrder, pub: Publication): void {
    if (st.next === undefined) {
      if (st.awaitingArrivals && pub.offset === 1) {
        st.held.set(pub.offset, pub);
        this.startAtFirstArrival(channel);
        return;
      }
      if (!st.adoptFirst) {
        // Still reading the starting position: `start` sorts these out.
        st.held.set(pub.offset, pub);
        return;
      }
      st.adoptFirst = false;
      st.next = pub.offset;
      st.epoch = pub.epoch;
    }
    if (st.epoch !== pub.epoch) {
      if (st.epoch === undefined) {
        st.epoch = pub.epoch;
      } else if (pub.epoch === st.retiredEpoch) {
        return;
      } else {
        // A new lineage (history was lost or the stream expired): offsets restart at 1.
        st.retiredEpoch = st.epoch;
        st.epoch = pub.epoch;
        st.next = 1;
        st.held.clear();
        this.clearTimer(st);
        st.generation++;
      }
    }
    if (pub.offset < st.next) return;
    if (pub.offset > st.next) {
      st.held.set(pub.offset, pub);
      this.schedule(channel, st);
      return;
    }
    this.options.deliver(channel, pub);
    st.next++;
    this.drain(channel, st);
  }

  private drain(channel: string, st: ChannelOrder): void {
    if (st.next === undefined) return;
    for (let pub = st.held.get(st.next); pub !== undefined; pub = st.held.get(st.next)) {
      st.held.delete(st.next);
      this.options.deliver(channel, pub);
      st.next++;
    }
    if (st.held.size === 0) this.clearTimer(st);
    else this.schedule(channel, st);
  }

  private schedule(channel: string, st: ChannelOrder): void {
    if (st.filling) return;
    if (st.held.size >= this.options.maxHeld) {
      this.clearTimer(st);
      void this.fill(channel, st);
      return;
    }
    if (st.timer) return;
    st.timer = setTimeout(() => {
      st.timer = undefined;
      void this.fill(channel, st);
    }, this.options.holdMs);
    st.timer.unref();
  }

  /** Fetches the offsets between `next` and the first held publication, then moves on. */
  private async fill(channel: string, st: ChannelOrder): Promise<void> {
    if (this.channels.get(channel) !== st || st.filling || st.next === undefined || st.epoch === undefined) return;
    let first = Infinity;
    for (const offset of st.held.keys()) if (offset < first) first = offset;
    if (first === Infinity) return;
    const from = st.next;
    const to = first - 1;
    const epoch = st.epoch;
    const generation = st.generation;
    let fetched: readonly Publication[] = [];
    let cause: unknown;
    st.filling = true;
    try {
      fetched = await this.options.fetch(channel, epoch, from, to);
    } catch (err) {
      cause = err;
    } finally {
      st.filling = false;
    }
    if (this.channels.get(channel) !== st || st.generation !== generation || st.next === undefined) {
      if (this.channels.get(channel) === st && st.held.size > 0 && st.next !== undefined) this.schedule(channel, st);
      return;
    }
    for (const pub of fetched) {
      if (pub.epoch === epoch && pub.offset >= st.next && pub.offset <= to && !st.held.has(pub.offset)) st.held.set(pub.offset, pub);
    }
    this.drain(channel, st);
    if (st.next <= to) {
      let resume = Infinity;
      for (const offset of st.held.keys()) if (offset < resume) resume = offset;
      if (resume === Infinity) return;
      this.options.onLoss(channel, st.next, resume - 1, cause);
      st.next = resume;
      this.drain(channel, st);
    }
  }

  private clearTimer(st: ChannelOrder): void {
    if (st.timer) {
      clearTimeout(st.timer);
      st.timer = undefined;
    }
  }
}
