/**
 * Order, once each, with its data: every subscriber of a channel gets its publications at
 * contiguous offsets, whatever the cadence of the publishers, the number of instances, the
 * subscribers coming and going, an instance paused, and the `centrifuge` SDK release on the
 * other end. Run on the machine's Redis and on its NATS JetStream, three Relais instances each.
 *
 * Subscribers are checked at the wire (lean raw-WebSocket clients, which also count frames
 * holding more than one message) and through the SDK: the newest release, the oldest 5.x,
 * and 5.7.4, the last release whose frame dispatch reorders joined frames.
 *
 * The schedule (targets, bursts, pauses, who subscribes when) comes from a seeded random
 * source printed with the figures: `RELAIS_ORDERING_SEED=<seed>` replays it.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { busEnv, deletePrefix, describeWithBus, sharedBusAvailable, SHARED_URL, type BusKind } from './helpers/buses.js';
import { sleep } from './helpers/clients.js';
import { expectClean, report, Resources, until } from './helpers/cluster.js';
import { LeanSubscriber } from './helpers/lean_subscriber.js';
import { checkDelivery, expectedSequence, PublishLoop, totals, type Delivery, type DeliveryCheck } from './helpers/ledger.js';
import { startRelais, withTimeout, type RelaisProcess } from './helpers/relais.js';
import { SdkSubscriber } from './helpers/sdk_subscriber.js';
import { SDK_5_7, SDK_MATRIX, type SdkRelease } from './helpers/sdk_versions.js';
import { seeded } from './helpers/seeded.js';

const CONFIG = {
  namespaces: {
    feed: {
      history_size: 25_000,
      history_ttl: '10m',
      force_recovery: true,
      recovery_max_publications: 25_000,
      allow_subscribe: 'authenticated',
    },
  },
};

const BASE_SEED = Number(process.env['RELAIS_ORDERING_SEED'] ?? randomInt(1, 2 ** 31));

/** One source of `n` for every publish loop of a test: each publication carries its own. */
function counter(): () => number {
  let n = 0;
  return () => ++n;
}

function expectAllAcknowledged(loops: readonly PublishLoop[]): number {
  const refused = loops.flatMap((l) => l.outcomes.filter((o) => !o.ack));
  expect(refused.slice(0, 5).map((o) => ({ n: o.n, attempts: o.attempts })), 'every publication acknowledged').toEqual([]);
  return loops.reduce((sum, l) => sum + l.outcomes.length, 0);
}

const BUSES: readonly BusKind[] = ['redis', 'nats'];
/** Time an SDK subscriber has to connect and subscribe: generous, since the suite shares 2 cores with the rest of CI. */
const SUBSCRIBE_TIMEOUT_MS = 20_000;
const available = await Promise.all(BUSES.map((kind) => sharedBusAvailable(kind)));

for (const [index, kind] of BUSES.entries()) {
  const missing = available[index] ? undefined : `no ${kind} at ${SHARED_URL[kind]}${kind === 'nats' ? ' with JetStream' : ''}`;
  describeWithBus(`ordering on ${kind}`, missing, () => {
    const prefix = `relais-order-${kind}-${randomBytes(4).toString('hex')}`;
    const secrets = { RELAIS_TOKEN_SECRET: `order-secret-${randomBytes(8).toString('hex')}`, RELAIS_API_KEY: `order-key-${randomBytes(8).toString('hex')}` };
    const run = new Resources();

    afterEach(async () => {
      await run.release();
    });

    afterAll(async () => {
      await run.release();
      await deletePrefix(kind, prefix);
    });

    /** `writeDelay`: the instance's client.write_delay (several frames to one connection in one write). */
    async function instance(writeDelay = '0ms'): Promise<RelaisProcess> {
      const relais = await startRelais({ env: { ...busEnv(kind, SHARED_URL[kind], prefix), ...secrets }, config: { ...CONFIG, client: { write_delay: writeDelay } } });
      run.processes.push(relais);
      return relais;
    }

    async function sdk(name: string, node: RelaisProcess, channel: string, release: SdkRelease): Promise<SdkSubscriber> {
      return run.on(await SdkSubscriber.open(name, node.wsUrl, await node.token(name), channel, SUBSCRIBE_TIMEOUT_MS, release), (s) => s.close());
    }

    async function lean(node: RelaisProcess, channel: string, since?: { offset: number; epoch: string }): Promise<LeanSubscriber> {
      const token = await node.token('lean');
      return run.on(await LeanSubscriber.open({ url: () => node.wsUrl, token, channel, ...(since ? { since } : {}) }), (s) => s.close());
    }

    it('SDK 5.7 subscribers on 3 instances (two of them coalescing writes with client.write_delay): 500 publications one after another, then 2,000 from publishers on every instance, each in order with its data', async () => {
      const channel = 'feed:sdk57';
      const nodes = await Promise.all([instance(), instance('5ms'), instance('30ms')]);
      const subscribers: SdkSubscriber[] = [];
      for (const [i, node] of nodes.entries()) {
        for (let k = 0; k < 3; k++) subscribers.push(await sdk(`sdk${SDK_5_7.version}-${i}-${k}`, node, channel, SDK_5_7));
      }
      const numbers = counter();
      const sequential = new PublishLoop({ channel, target: () => nodes[0], concurrency: 1, numbers }).start(500);
      await withTimeout(sequential.done(), 60_000, 'sequential publishing did not finish');
      const concurrent = nodes.map((node) => new PublishLoop({ channel, target: () => node, concurrency: 4, numbers }).start(667));
      await withTimeout(Promise.all(concurrent.map((l) => l.done())), 60_000, 'concurrent publishing did not finish');
      const loops = [sequential, ...concurrent];
      const published = expectAllAcknowledged(loops);
      const { expected } = expectedSequence(loops);

      await until(() => subscribers.every((s) => s.position.offset >= published), 30_000, () => `every subscriber at ${published} (${subscribers.map((s) => s.count).join(',')})`);
      await sleep(200); // anything sent twice would arrive now
      const checks = subscribers.map((s) => checkDelivery(s, expected));
      const sum = totals(checks);
      report(kind, `SDK ${SDK_5_7.version} regression`, { published, subscribers: sum.subscribers, delivered: sum.delivered, outOfOrder: sum.outOfOrder, duplicated: sum.duplicated, lost: sum.lost, wrongData: sum.wrongData });
      expectClean(`SDK ${SDK_5_7.version}`, checks);
    }, 180_000);

    it('20,000 publications in five cadences, subscribers coming and going, an instance paused: contiguous offsets with their data at the wire and in every SDK release', async () => {
      const seed = BASE_SEED + index;
      const random = seeded(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
      const between = (min: number, max: number): number => min + Math.floor(random() * (max - min + 1));
      report(kind, 'ordering seed', { seed, replay: `RELAIS_ORDERING_SEED=${BASE_SEED}` });

      const channel = 'feed:order';
      const nodes = await Promise.all([instance(), instance(), instance()]);
      const paused = nodes[2];
      const leans: LeanSubscriber[] = [];
      const sdks: SdkSubscriber[] = [];
      for (const [i, node] of nodes.entries()) {
        leans.push(await lean(node, channel), await lean(node, channel));
        for (const release of SDK_MATRIX) sdks.push(await sdk(`sdk${release.version}-${i}`, node, channel, release));
      }

      const numbers = counter();
      const loops: PublishLoop[] = [];
      const publish = (target: () => RelaisProcess, count: number, concurrency: number, paceMs?: () => number): Promise<void> => {
        const loop = new PublishLoop({ channel, target, concurrency, numbers, ...(paceMs ? { paceMs } : {}) }).start(count);
        loops.push(loop);
        return withTimeout(loop.done(), 120_000, `publishing ${count} did not finish`);
      };
      const phases: Record<string, number> = {};
      const phase = async (name: string, work: () => Promise<void>): Promise<void> => {
        const started = Date.now();
        await work();
        phases[name] = Date.now() - started;
      };

      // One at a time, with random pauses of 0-20 ms, to random instances.
      await phase('pacedMs', () => publish(() => pick(nodes), 300, 1, () => random() * 20));
      // Bursts of 50-250 fired at once at one instance, with pauses between them.
      await phase('burstsMs', async () => {
        for (let b = 0; b < 40; b++) {
          const node = pick(nodes);
          await publish(() => node, between(50, 250), 32);
          await sleep(between(0, 300));
        }
      });
      // Publishers on every instance at once.
      await phase('concurrentMs', async () => {
        await Promise.all(nodes.map((node) => publish(() => node, 2000, 8)));
      });
      // Subscribers join and leave (some recovering from where the previous one left) while publications flow.
      const churned: { delivery: Delivery; from: number }[] = [];
      await phase('churnMs', async () => {
        let publishing = true;
        const flow = publish(() => pick(nodes), 4000, 16).finally(() => {
          publishing = false;
        });
        const churner = async (c: number): Promise<void> => {
          let last: { offset: number; epoch: string } | undefined;
          for (let round = 0; publishing && round < 200; round++) {
            const node = pick(nodes);
            const kindOf = between(0, SDK_MATRIX.length);
            if (kindOf === SDK_MATRIX.length) {
              const since = last && random() < 0.5 ? last : undefined;
              const s = await lean(node, channel, since);
              await sleep(between(100, 800));
              s.close();
              last = s.position;
              const first = s.subscribedEvents[0];
              const from = since ? since.offset : (first?.offset ?? 0) - (first?.replayed ?? 0);
              churned.push({ delivery: { name: `churn-lean-${c}-${round}`, offsets: s.offsets, values: s.values, subscribedEvents: s.subscribedEvents }, from });
            } else {
              const release = SDK_MATRIX[kindOf] as SdkRelease;
              const s = await sdk(`churn-sdk${release.version}-${c}-${round}`, node, channel, release);
              await sleep(between(100, 800));
              s.close();
              churned.push({ delivery: s, from: s.subscribedEvents[0]?.offset ?? 0 });
            }
          }
        };
        await Promise.all([flow, ...Array.from({ length: 6 }, (_, c) => churner(c))]);
      });
      // One instance frozen (SIGSTOP) while the others publish; its subscribers get the backlog at once when it thaws.
      await phase('pausedMs', async () => {
        const flow = publish(() => pick(nodes.slice(0, 2)), 4000, 16);
        await sleep(between(200, 1000));
        const pid = paused.child.pid ?? 0;
        process.kill(pid, 'SIGSTOP');
        try {
          await sleep(between(500, 2000));
        } finally {
          process.kill(pid, 'SIGCONT');
        }
        await flow;
      });

      const published = expectAllAcknowledged(loops);
      const { expected } = expectedSequence(loops);
      await until(
        () => leans.every((s) => s.position.offset >= published) && sdks.every((s) => s.position.offset >= published),
        60_000,
        () => `every subscriber at ${published} (lean ${leans.map((s) => s.position.offset).join(',')}; sdk ${sdks.map((s) => s.position.offset).join(',')})`,
      );
      await sleep(200); // anything sent twice would arrive now

      const stable: DeliveryCheck[] = [
        ...leans.map((s, i) => checkDelivery({ name: `lean-${i}`, offsets: s.offsets, values: s.values, subscribedEvents: s.subscribedEvents }, expected)),
        ...sdks.map((s) => checkDelivery(s, expected)),
      ];
      const windows = churned.map(({ delivery, from }) => checkDelivery(delivery, expected, { from, to: Math.max(from, ...delivery.offsets) }));
      const perRelease = Object.fromEntries(
        SDK_MATRIX.map((release) => {
          const mine = sdks.map((s, i) => ({ s, c: stable[leans.length + i] as DeliveryCheck })).filter(({ s }) => s.sdk === release);
          return [release.version, `${mine.length} subscribers, ${totals(mine.map(({ c }) => c)).outOfOrder} out of order`];
        }),
      );
      const sum = totals([...stable, ...windows]);
      report(kind, 'ordering', {
        seed,
        published,
        subscribers: `${stable.length} for the whole run (${leans.length} lean, ${sdks.length} sdk) + ${churned.length} coming and going`,
        perRelease,
        delivered: sum.delivered,
        outOfOrder: sum.outOfOrder,
        duplicated: sum.duplicated,
        lost: sum.lost,
        wrongData: sum.wrongData,
        multiMessageFrames: leans.reduce((n, s) => n + s.multiMessageFrames, 0),
        ...phases,
      });
      expectClean(`ordering (seed ${seed})`, [...stable, ...windows]);
      // Every message in a frame of its own: what keeps SDK releases before 5.8 in order.
      expect(leans.map((s) => s.multiMessageFrames)).toEqual(leans.map(() => 0));
    }, 300_000);
  });
}

describe('ordering on one server of 2 workers (the bus built into the primary)', () => {
  const run = new Resources();
  afterEach(async () => {
    await run.release();
  });

  it('about 10,000 publications paced, in bursts and concurrent: every subscriber, whichever worker it landed on, gets contiguous offsets with their data', async () => {
    const seed = BASE_SEED + 7;
    const random = seeded(seed);
    const channel = 'feed:workers';
    const server = await startRelais({ config: CONFIG, workers: 2 });
    run.processes.push(server);
    const token = await server.token('lean');
    const leans = await Promise.all(Array.from({ length: 4 }, () => LeanSubscriber.open({ url: () => server.wsUrl, token, channel })));
    for (const l of leans) run.on(l, (s) => s.close());
    const sdks: SdkSubscriber[] = [];
    for (const release of SDK_MATRIX) sdks.push(run.on(await SdkSubscriber.open(`sdk${release.version}`, server.wsUrl, await server.token(release.version), channel, SUBSCRIBE_TIMEOUT_MS, release), (s) => s.close()));
    const numbers = counter();
    const loops: PublishLoop[] = [];
    const publish = async (count: number, concurrency: number, paceMs?: () => number): Promise<void> => {
      const loop = new PublishLoop({ channel, target: () => server, concurrency, numbers, ...(paceMs ? { paceMs } : {}) }).start(count);
      loops.push(loop);
      await withTimeout(loop.done(), 120_000, `publishing ${count} did not finish`);
    };
    await publish(200, 1, () => random() * 10);
    for (let b = 0; b < 20; b++) await publish(50 + Math.floor(random() * 200), 32);
    await Promise.all([publish(3400, 8), publish(3400, 8)]);
    const published = expectAllAcknowledged(loops);
    const { expected } = expectedSequence(loops);
    await until(
      () => leans.every((s) => s.position.offset >= published) && sdks.every((s) => s.position.offset >= published),
      60_000,
      () => `every subscriber at ${published}`,
    );
    await sleep(200);
    const checks = [...leans.map((s, i) => checkDelivery({ name: `lean-${i}`, offsets: s.offsets, values: s.values }, expected)), ...sdks.map((s) => checkDelivery(s, expected))];
    const nodes = (await server.call<{ nodes: unknown[] }>('info', {})).nodes.length;
    const sum = totals(checks);
    report('ordering workers', '2 workers', { seed, workers: nodes, published, subscribers: sum.subscribers, delivered: sum.delivered, outOfOrder: sum.outOfOrder, duplicated: sum.duplicated, lost: sum.lost });
    expect(nodes).toBe(2);
    expectClean(`2 workers (seed ${seed})`, checks);
  }, 240_000);
});
