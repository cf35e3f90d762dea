/** NatsOccupancy on the machine's NATS (NATS_TEST_URL), a prefix per test whose buckets are deleted afterwards. */
import { randomBytes, randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { describeWithBus, natsWithJetStream } from '../../../test/helpers/buses.js';
import { describeOccupancyContract } from '../occupancy.contract.js';
import { encodeToken, natsNames } from './names.js';
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

  describe('bad entries', () => {
    it('takes an unreadable channel entry as empty, says so, and rewrites it', async () => {
      const own = newPrefix();
      const warnings: string[] = [];
      const counter = new NatsOccupancy({
        servers: NATS_URL,
        prefix: own,
        nodeId: 'node-a',
        livenessMs: 5000,
        logger: { warn: (_obj, msg) => void warnings.push(msg), error: () => undefined },
      });
      const nc = await connect({ servers: NATS_URL });
      try {
        expect(await counter.set('room:1', true)).toBe('occupied');
        expect(await counter.set('room:1', false)).toBe('vacated');
        const kv = await new Kvm(jetstream(nc)).open(natsNames(own).occupancyBucket);
        await kv.put(`c.${encodeToken('room:1')}`, 'not json');
        expect(await counter.set('room:1', true)).toBe('occupied');
        expect(warnings).toEqual(['unreadable channel occupancy entry: taken as empty']);
        expect(JSON.parse((await kv.get(`c.${encodeToken('room:1')}`))?.string() ?? '')).toEqual(['node-a']);
      } finally {
        await counter.close();
        await nc.close();
        await deleteNatsPrefix(NATS_URL, own);
      }
    });
  });
});
