/** NatsOccupancy on the machine's NATS (NATS_TEST_URL), a prefix per test whose buckets are deleted afterwards. */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll } from 'vitest';
import { describeWithBus, natsWithJetStream } from '../../../test/helpers/buses.js';
import { describeOccupancyContract } from '../occupancy.contract.js';
import { NatsOccupancy } from './occupancy_nats.js';
import { deleteNatsPrefix } from './resources.js';

const NATS_URL = process.env['NATS_TEST_URL'] ?? 'nats://127.0.0.1:4222';
const newPrefix = (): string => `relais_occ_${randomBytes(5).toString('hex')}`;
const available = await natsWithJetStream(NATS_URL, 2000);

describeWithBus('NatsOccupancy', available ? undefined : `no NATS with JetStream at ${NATS_URL}`, () => {
  let prefix = newPrefix();
  afterAll(() => deleteNatsPrefix(NATS_URL, prefix));
  describeOccupancyContract('nats', {
    distributed: true,
    node: (livenessMs) => {
      const counter = new NatsOccupancy({ servers: NATS_URL, prefix, nodeId: randomUUID(), livenessMs });
      return Promise.resolve({ counter, crash: () => counter.close() });
    },
    reset: async () => {
      await deleteNatsPrefix(NATS_URL, prefix);
      prefix = newPrefix();
    },
  });
});
