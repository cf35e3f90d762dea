import { describeOccupancyContract } from '../occupancy.contract.js';
import { PrimaryBus } from './bus_primary.js';
import { PrimaryClient } from './ipc_client.js';
import { linkedPair } from './ipc_link.js';
import { IpcOccupancy } from './occupancy_ipc.js';

const logger = { warn: () => undefined, error: () => undefined };
let primary: PrimaryBus | undefined;

/** Workers of one primary, linked in process; a crash cuts the worker's link, as its exit does. */
describeOccupancyContract('ipc (workers of one primary)', {
  distributed: true,
  async node() {
    if (!primary) {
      primary = new PrimaryBus(logger);
      await primary.start();
    }
    const [toWorker, toPrimary] = linkedPair();
    primary.attach(toWorker);
    const counter = new IpcOccupancy(new PrimaryClient(toPrimary));
    return {
      counter,
      crash: () => {
        toPrimary.close();
        return Promise.resolve();
      },
    };
  },
  async reset() {
    await primary?.close();
    primary = undefined;
  },
});
