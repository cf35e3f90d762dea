import { describeOccupancyContract } from './occupancy.contract.js';
import { LocalOccupancy } from './occupancy.js';

describeOccupancyContract('local (one process)', {
  distributed: false,
  node: () => {
    const counter = new LocalOccupancy();
    return Promise.resolve({ counter, crash: () => counter.close() });
  },
  reset: () => Promise.resolve(),
});
