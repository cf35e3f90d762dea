import type { ClientInfo } from '../../core/publication.js';
import type { PresenceManager, PresenceStats } from '../broker.js';
import type { PrimaryClient } from './ipc_client.js';

/** Presence of a worker of `relais serve --workers N` without a bus: kept by the primary, for every worker. */
export class IpcPresenceManager implements PresenceManager {
  constructor(private readonly primary: PrimaryClient) {}

  add(channel: string, info: ClientInfo, ttlMs: number): Promise<void> {
    return this.primary.request({ op: 'presence.add', channel, info, ttlMs });
  }

  remove(channel: string, clientId: string): Promise<void> {
    return this.primary.request({ op: 'presence.remove', channel, client: clientId });
  }

  get(channel: string): Promise<Record<string, ClientInfo>> {
    return this.primary.request({ op: 'presence.get', channel });
  }

  stats(channel: string): Promise<PresenceStats> {
    return this.primary.request({ op: 'presence.stats', channel });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
