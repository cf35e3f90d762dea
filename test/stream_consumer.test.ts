/**
 * The stream consumers. Redis Stream: an app adds 2,000 command entries (and one malformed) to its
 * stream while two Relais instances consume it through one group, and one of them is killed
 * with SIGKILL. Every entry is published exactly once (read back from the channel's history),
 * the killed instance's pending entries are claimed by the other, and every entry ends
 * acknowledged. NATS JetStream: 1,000 messages through one durable consumer shared by two
 * instances, each published once. Under CI=true a missing Redis or NATS fails the suite.
 */
import { randomBytes } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import { afterAll, afterEach, expect, it } from 'vitest';
import { busEnv, deletePrefix, describeWithBus, sharedBusAvailable, SHARED_URL } from './helpers/buses.js';
import { report, Resources, until } from './helpers/cluster.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const ENTRIES = 2000;

describeWithBus('the Redis Stream consumer', (await sharedBusAvailable('redis')) ? undefined : `no Redis at ${SHARED_URL.redis}`, () => {
  const run = new Resources();
  const redis = new Redis(SHARED_URL.redis, { lazyConnect: true });
  const streams: string[] = [];
  const prefixes: string[] = [];
  afterEach(() => run.release());
  afterAll(async () => {
    if (streams.length > 0) await redis.del(...streams);
    redis.disconnect();
    for (const prefix of prefixes) await deletePrefix('redis', prefix);
  });

  it('2,000 entries, one instance killed: each published once, all acknowledged, a malformed one skipped', async () => {
    const stream = `relais-test-commands-${randomBytes(4).toString('hex')}`;
    streams.push(stream);
    const prefix = `relais-stream-${randomBytes(4).toString('hex')}`;
    prefixes.push(prefix);
    const options = {
      env: busEnv('redis', SHARED_URL.redis, prefix),
      config: {
        client: { history_max_limit: ENTRIES },
        namespaces: { feed: { history_size: ENTRIES * 2, history_ttl: '10m' } },
        consumers: { redis_stream: { url: SHARED_URL.redis, stream, batch: 50, block: '200ms', claim_idle: '1s' } },
      },
    };
    const start = async (): Promise<RelaisProcess> => {
      const relais = await startRelais(options);
      run.processes.push(relais);
      return relais;
    };
    const [a, b] = await Promise.all([start(), start()]);
    await redis.xadd(stream, '*', 'method', 'publish', 'payload', '{not json');
    for (let n = 0; n < ENTRIES; n++) {
      await redis.xadd(stream, '*', 'method', 'publish', 'payload', JSON.stringify({ channel: 'feed:all', data: { n } }));
      if (n === ENTRIES / 2) await a.kill9();
    }
    const pending = async (): Promise<number> => Number(((await redis.xpending(stream, 'relais')) as [number])[0]);
    const lag = async (): Promise<number> => {
      const groups = (await redis.xinfo('GROUPS', stream)) as unknown[][];
      const info = groups[0] ?? [];
      const lastDelivered = info[info.indexOf('last-delivered-id') + 1];
      const last = ((await redis.xrevrange(stream, '+', '-', 'COUNT', 1)) as [string, string[]][])[0]?.[0];
      return lastDelivered === last ? 0 : 1;
    };
    await until(async () => (await lag()) === 0 && (await pending()) === 0, 30_000, 'every entry delivered and acknowledged');
    const history = await b.call<{ publications: { data: { n: number } }[] }>('history', { channel: 'feed:all', limit: ENTRIES * 2, since: { offset: 0, epoch: '' } });
    const published = history.publications.map((p) => p.data.n);
    expect(published.length).toBe(ENTRIES);
    expect([...published].sort((x, y) => x - y)).toEqual(Array.from({ length: ENTRIES }, (_, n) => n));
    report('redis', 'stream consumer', { entries: ENTRIES, instances: 2, killed: 1, published: published.length });
  });
});

describeWithBus(
  'the NATS JetStream consumer',
  (await sharedBusAvailable('redis')) && (await sharedBusAvailable('nats')) ? undefined : `no Redis at ${SHARED_URL.redis} or NATS at ${SHARED_URL.nats}`,
  () => {
    const run = new Resources();
    const cleanup: (() => Promise<unknown>)[] = [];
    afterEach(() => run.release());
    afterAll(async () => {
      for (const step of cleanup) await step().catch(() => undefined);
    });

    it('1,000 messages through a durable consumer shared by two instances: each published once', async () => {
      const name = `relais_test_${randomBytes(4).toString('hex')}`;
      const nc = await connect({ servers: SHARED_URL.nats });
      cleanup.push(() => nc.close());
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name, subjects: [`${name}.>`] });
      cleanup.unshift(() => jsm.streams.delete(name));
      const prefix = `relais-jetstream-${randomBytes(4).toString('hex')}`;
      cleanup.push(() => deletePrefix('redis', prefix));
      const options = {
        env: busEnv('redis', SHARED_URL.redis, prefix),
        config: {
          client: { history_max_limit: 2000 },
          namespaces: { feed: { history_size: 2000, history_ttl: '10m' } },
          consumers: { nats_jetstream: { url: SHARED_URL.nats, stream: name, subject: `${name}.commands`, batch: 50 } },
        },
      };
      const nodes = await Promise.all([startRelais(options), startRelais(options)]);
      run.processes.push(...nodes);
      const js = jetstream(nc);
      for (let n = 0; n < 1000; n++) await js.publish(`${name}.commands`, JSON.stringify({ method: 'publish', payload: { channel: 'feed:all', data: { n } } }));
      const read = async (): Promise<number[]> =>
        (await (nodes[1]).call<{ publications: { data: { n: number } }[] }>('history', { channel: 'feed:all', limit: 2000, since: { offset: 0, epoch: '' } })).publications.map(
          (p) => p.data.n,
        );
      await until(async () => (await read()).length >= 1000, 30_000, 'every message published');
      const published = await read();
      expect(published.length).toBe(1000);
      expect([...published].sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, n) => n));
      const info = await jsm.consumers.info(name, 'relais');
      expect(info.num_ack_pending + info.num_pending).toBe(0);
    });
  },
);
