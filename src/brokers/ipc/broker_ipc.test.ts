import { describeBrokerContract } from '../broker.contract.js';
import { IpcBroker } from './broker_ipc.js';
import { PrimaryBus } from './bus_primary.js';
import { PrimaryClient } from './ipc_client.js';
import { linkedPair } from './ipc_link.js';
import { IpcPresenceManager } from './presence_ipc.js';

const logger = { warn: () => undefined, error: () => undefined };
let primary: PrimaryBus | undefined;

/** Workers of one primary, linked in process (structured clones delivered on later ticks, as over IPC). */
describeBrokerContract('ipc (workers of one primary)', {
  distributed: true,
  async node() {
    if (!primary) {
      primary = new PrimaryBus(logger);
      await primary.start();
    }
    const [toWorker, toPrimary] = linkedPair();
    primary.attach(toWorker);
    const client = new PrimaryClient(toPrimary);
    return { broker: new IpcBroker(client, logger), presence: new IpcPresenceManager(client) };
  },
  reset() {
    void primary?.close();
    primary = undefined;
  },
});
