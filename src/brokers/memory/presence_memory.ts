import type { ClientInfo } from '../../core/publication.js';
import type { PresenceManager, PresenceStats } from '../broker.js';

interface Entry {
  readonly info: ClientInfo;
  expiresAt: number;
}

/** Presence of a single process. Entries expire like those of the cluster managers. */
export class MemoryPresenceManager implements PresenceManager {
  private readonly channels = new Map<string, Map<string, Entry>>();

  add(channel: string, info: ClientInfo, ttlMs: number): Promise<void> {
    let entries = this.channels.get(channel);
    if (!entries) {
      entries = new Map();
      this.channels.set(channel, entries);
    }
    entries.set(info.client, { info, expiresAt: Date.now() + ttlMs });
    return Promise.resolve();
  }

  remove(channel: string, clientId: string): Promise<void> {
    const entries = this.channels.get(channel);
    if (entries) {
      entries.delete(clientId);
      if (entries.size === 0) this.channels.delete(channel);
    }
    return Promise.resolve();
  }

  get(channel: string): Promise<Record<string, ClientInfo>> {
    const out: Record<string, ClientInfo> = {};
    for (const [client, entry] of this.live(channel)) out[client] = entry.info;
    return Promise.resolve(out);
  }

  stats(channel: string): Promise<PresenceStats> {
    const users = new Set<string>();
    let numClients = 0;
    for (const [, entry] of this.live(channel)) {
      numClients++;
      users.add(entry.info.user);
    }
    return Promise.resolve({ numClients, numUsers: users.size });
  }

  close(): Promise<void> {
    this.channels.clear();
    return Promise.resolve();
  }

  private *live(channel: string): Iterable<[string, Entry]> {
    const entries = this.channels.get(channel);
    if (!entries) return;
    const now = Date.now();
    for (const [client, entry] of entries) {
      if (entry.expiresAt <= now) entries.delete(client);
      else yield [client, entry];
    }
    if (entries.size === 0) this.channels.delete(channel);
  }
}
