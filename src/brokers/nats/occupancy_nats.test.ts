/** NatsOccupancy on the machine's NATS (NATS_TEST_URL), a prefix per test whose buckets are deleted afterwards. */
import { randomBytes, randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
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

  describe('lost buckets', () => {
    it('a liveness bucket deleted under live nodes is created again, and judges nobody dead before the liveness has passed', async () => {
      const own = newPrefix();
      const livenessMs = 1500;
      const make = (nodeId: string): NatsOccupancy => new NatsOccupancy({ servers: NATS_URL, prefix: own, nodeId, livenessMs });
      const [a, b] = [make('node-a'), make('node-b')];
      const nc = await connect({ servers: NATS_URL });
      try {
        expect(await a.set('kept', true)).toBe('occupied');
        await new Promise((resolve) => setTimeout(resolve, livenessMs + 200));
        expect([...(await a.sweep()), ...(await b.sweep())]).toEqual([]);
        await (await jetstreamManager(nc)).streams.delete(`KV_${natsNames(own).occupancyAliveBucket}`);
        // b finds the bucket gone, creates it again holding only its own key, and sweeps
        // before a has put its key again: a must not be judged dead.
        const reported: string[] = [];
        const deadline = Date.now() + 10_000;
        let swept = 0;
        while (swept < 3 && Date.now() < deadline) {
          try {
            reported.push(...(await b.sweep()));
            swept++;
          } catch {
            // The call that found the bucket gone.
          }
        }
        expect(swept).toBe(3);
        // A sweep whose KV read times out (a loaded machine) fails as the server's sweeper's
        // would, and is tried again; most must succeed for the check to mean anything.
        let bSwept = 0;
        for (let i = 0; i < 10; i++) {
          const [fromA, fromB] = await Promise.all([
            a.sweep().catch(() => []),
            b.sweep().then(
              (found) => {
                bSwept++;
                return found;
              },
              () => [],
            ),
          ]);
          reported.push(...fromA, ...fromB);
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
        expect(bSwept).toBeGreaterThanOrEqual(5);
        expect(reported).toEqual([]);
        // The sweep still works: a dies, b vacates its channel once the liveness has passed.
        await a.close();
        const until = Date.now() + 10_000;
        while (!reported.includes('kept') && Date.now() < until) {
          reported.push(...(await b.sweep().catch(() => [])));
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        expect(reported).toEqual(['kept']);
      } finally {
        await Promise.all([a.close(), b.close()]);
        await nc.close();
        await deleteNatsPrefix(NATS_URL, own);
      }
    });
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
