import type { OccupancyCounter, OccupancyTransition } from '../occupancy.js';
import type { PrimaryClient } from './ipc_client.js';

/**
 * Channel occupancy of a worker of `relais serve --workers N` without a bus: kept by the
 * primary for every worker (PrimaryOccupancy), which decides each transition and clears the
 * channels of a worker that exits; liveness is the worker's IPC link, so nothing to refresh.
 */
export class IpcOccupancy implements OccupancyCounter {
  constructor(private readonly primary: PrimaryClient) {}

  set(channel: string, occupied: boolean): Promise<OccupancyTransition | undefined> {
    return this.primary.request<OccupancyTransition | null>({ op: 'occupancy.set', channel, occupied }).then((t) => t ?? undefined);
  }

  sweep(): Promise<string[]> {
    return this.primary.request({ op: 'occupancy.sweep' });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
