import type { OccupancyTransition } from '../occupancy.js';

/**
 * The channel occupancy of `relais serve --workers N` without a bus, kept by the primary:
 * per channel the workers that have subscribers. The primary handles one request at a time,
 * so each change reads and writes the set atomically and one worker sees each transition.
 * A worker that exits leaves its channels; those it was the last one holding are kept
 * until a live worker's sweep takes them, so each is reported once, by one worker.
 */
export class PrimaryOccupancy<W> {
  private readonly channels = new Map<string, Set<W>>();
  private readonly held = new Map<W, Set<string>>();
  private vacated: string[] = [];

  set(worker: W, channel: string, occupied: boolean): OccupancyTransition | undefined {
    const holders = this.channels.get(channel);
    const before = holders?.size ?? 0;
    if (occupied) {
      if (holders) holders.add(worker);
      else this.channels.set(channel, new Set([worker]));
      this.heldBy(worker).add(channel);
    } else {
      holders?.delete(worker);
      if (holders?.size === 0) this.channels.delete(channel);
      this.held.get(worker)?.delete(channel);
    }
    const after = this.channels.get(channel)?.size ?? 0;
    if (before === 0 && after > 0) return 'occupied';
    if (before > 0 && after === 0) return 'vacated';
    return undefined;
  }

  /** The worker is gone: its channels are left, and those now empty wait for a sweep. */
  remove(worker: W): void {
    for (const channel of this.held.get(worker) ?? []) {
      const holders = this.channels.get(channel);
      holders?.delete(worker);
      if (holders?.size === 0) {
        this.channels.delete(channel);
        this.vacated.push(channel);
      }
    }
    this.held.delete(worker);
  }

  /** The channels vacated by exited workers since the last sweep, handed to this caller only. */
  sweep(): string[] {
    const vacated = this.vacated;
    this.vacated = [];
    return vacated;
  }

  private heldBy(worker: W): Set<string> {
    let channels = this.held.get(worker);
    if (!channels) {
      channels = new Set();
      this.held.set(worker, channels);
    }
    return channels;
  }
}
