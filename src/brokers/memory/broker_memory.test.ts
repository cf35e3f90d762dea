import { describeBrokerContract } from '../broker.contract.js';
import { MemoryBroker } from './broker_memory.js';
import { MemoryPresenceManager } from './presence_memory.js';

describeBrokerContract('memory', {
  distributed: false,
  node: () => Promise.resolve({ broker: new MemoryBroker(), presence: new MemoryPresenceManager() }),
  reset: () => undefined,
});
