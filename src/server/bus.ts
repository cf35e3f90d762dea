import type { Logger } from 'pino';
import type { Broker, PresenceManager } from '../brokers/broker.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import { MemoryPresenceManager } from '../brokers/memory/presence_memory.js';
import type { RelaisConfig } from '../config/schema.js';

export interface Bus {
  readonly broker: Broker;
  readonly presence: PresenceManager;
  /** One line for the start-up log: which bus, and what it means. */
  readonly description: string;
}

/** Picks the message bus from the configuration: memory unless REDIS_URL or NATS_URL is set. */
export function createBus(config: Readonly<RelaisConfig>, _nodeId: string, _logger: Logger): Promise<Bus> {
  if (config.redis_url || config.nats_url) {
    return Promise.reject(new Error('REDIS_URL and NATS_URL are not supported by this build yet'));
  }
  return Promise.resolve({
    broker: new MemoryBroker(),
    presence: new MemoryPresenceManager(),
    description: 'standalone mode: in-memory bus, one process (set REDIS_URL or NATS_URL to run several instances)',
  });
}
