/**
 * Whether channels have subscribers anywhere in the cluster, with the transitions decided
 * once: the lifecycle webhooks' `channel_occupied` and `channel_vacated`.
 */

/** A channel's cluster-wide transition made by one change: from no subscriber to some, or back. */
export type OccupancyTransition = 'occupied' | 'vacated';

/**
 * Per channel, the set of nodes that have subscribers, shared by every node of a bus. Each
 * change is applied atomically with the read of the set before and after it, so of several
 * nodes changing one channel at once exactly one sees each transition. A node that stops
 * without clearing its channels is removed by another node's `sweep` once its liveness
 * lapses (`sweep` reports the channels this vacated, each to one sweeper).
 */
export interface OccupancyCounter {
  /**
   * Records whether this node has subscribers of `channel`; resolves with the transition this
   * made cluster-wide, or undefined. Calls for one channel must not overlap (the caller
   * chains them). Rejects when the bus is unreachable: nothing was recorded.
   */
  set(channel: string, occupied: boolean): Promise<OccupancyTransition | undefined>;
  /** Keeps this node alive and removes nodes whose liveness lapsed; resolves with the channels that vacated. */
  sweep(): Promise<string[]>;
  close(): Promise<void>;
}

/** One process: the node's own view is the cluster's. */
export class LocalOccupancy implements OccupancyCounter {
  private readonly occupied = new Set<string>();

  set(channel: string, occupied: boolean): Promise<OccupancyTransition | undefined> {
    const before = this.occupied.has(channel);
    if (occupied) this.occupied.add(channel);
    else this.occupied.delete(channel);
    return Promise.resolve(before === occupied ? undefined : occupied ? 'occupied' : 'vacated');
  }

  sweep(): Promise<string[]> {
    return Promise.resolve([]);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
