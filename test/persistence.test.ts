/**
 * Persistent channels end to end (issue 10): real Relais processes on the embedded SQLite
 * store and on PostgreSQL with several instances over Redis. Every acknowledged publication
 * survives restarts and kill -9, reaches subscribers once and in order whichever instance
 * published it, and is recovered from the store after the bus lost everything; while the
 * database is down, publishes are refused as temporary errors and nothing acknowledged is
 * lost.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SubscribedContext } from 'centrifuge';
import { afterEach, describe, expect, it } from 'vitest';
import { busEnv, describeWithBus, PrivateBus, SHARED_URL } from './helpers/buses.js';
import { sdkClient, sleep, type SdkClient } from './helpers/clients.js';
import { expectClean, readyz, report, Resources, until } from './helpers/cluster.js';
import { LeanSubscriber } from './helpers/lean_subscriber.js';
import { checkDelivery, expectedSequence, PublishLoop, totals } from './helpers/ledger.js';
import { PrivatePostgres } from './helpers/postgres.js';
import { startRelais, withTimeout, type RelaisProcess } from './helpers/relais.js';
import { sharedStoreMissing, sharedStoreSuite } from './helpers/shared_store.js';

interface HistoryReply {
  publications: { data: { n: number }; offset: number }[];
  offset: number;
  epoch: string;
}

/** Every publication the store keeps of a channel, read back through the API newest first with a cursor, returned oldest first. */
async function storedHistory(relais: RelaisProcess, channel: string): Promise<{ offsets: number[]; values: number[]; epoch: string }> {
  const top = await relais.call<HistoryReply>('history', { channel, limit: 0 });
  const offsets: number[] = [];
  const values: number[] = [];
  let cursor = top.offset + 1;
  for (let pages = 0; cursor > 1 && pages < 1000; pages++) {
    const page = await relais.call<HistoryReply>('history', { channel, limit: 1000, reverse: true, since: { offset: cursor, epoch: top.epoch } });
    if (page.publications.length === 0) break;
    for (const pub of page.publications) {
      offsets.push(pub.offset);
      values.push(pub.data.n);
    }
    cursor = page.publications[page.publications.length - 1]?.offset ?? 0;
  }
  return { offsets: offsets.reverse(), values: values.reverse(), epoch: top.epoch };
}

const seq = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('persistent channels on the embedded SQLite store', () => {
  const run = new Resources();
  afterEach(async () => {
    await run.release();
  });

  const secrets = { RELAIS_TOKEN_SECRET: `persist-secret-${randomBytes(8).toString('hex')}`, RELAIS_API_KEY: `persist-key-${randomBytes(8).toString('hex')}` };

  async function instance(dataDir: string): Promise<RelaisProcess> {
    const relais = await startRelais({ env: { ...secrets, RELAIS_DATA_DIR: dataDir } });
    run.processes.push(relais);
    return relais;
  }

  it('a restart keeps every acknowledged message in order, and a subscriber from before recovers across it', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'relais-persist-')), 'data');
    let current = await instance(dataDir);
    const channel = 'chat:kept';
    const token = await current.token('reader');
    const reader = run.on(await LeanSubscriber.open({ url: () => current.wsUrl, token, channel, reconnect: true }), (s) => s.close());
    const before = new PublishLoop({ channel, target: () => current, concurrency: 8 }).start(300);
    await withTimeout(before.done(), 60_000, 'publishing before the restart');
    await reader.untilOffset(300, 10_000);

    expect(await current.stop()).toBe(0);
    current = await instance(dataDir);
    const numbers = ((n) => () => ++n)(300);
    const after = new PublishLoop({ channel, target: () => current, concurrency: 8, numbers }).start(100);
    await withTimeout(after.done(), 60_000, 'publishing after the restart');
    await reader.untilOffset(400, 20_000);

    const { expected } = expectedSequence([before, after]);
    expectClean('subscriber across the restart', [checkDelivery({ name: 'reader', offsets: reader.offsets, values: reader.values, subscribedEvents: reader.subscribedEvents }, expected)]);
    const resumed = reader.subscribedEvents.at(-1);
    expect({ wasRecovering: resumed?.wasRecovering, recovered: resumed?.recovered }).toEqual({ wasRecovering: true, recovered: true });
    const stored = await storedHistory(current, channel);
    expect(stored.offsets).toEqual(seq(1, 400));
    expect(stored.values).toEqual(expected);
  }, 120_000);

  it('kill -9 during a burst of 5,000 publishes: every acknowledged one is in the store after a restart, none twice', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'relais-persist-')), 'data');
    const first = await instance(dataDir);
    const channel = 'chat:burst';
    const loop = new PublishLoop({ channel, target: () => first, concurrency: 32, idempotencyPrefix: 'burst' }).start(5000);
    await until(() => loop.acked.length >= 1500, 60_000, 'a third of the burst acknowledged');
    await first.kill9();
    await withTimeout(loop.stop(), 30_000, 'publications in flight at the kill');
    const acked = loop.acked;
    const second = await instance(dataDir);
    const stored = await storedHistory(second, channel);
    const storedByOffset = new Map(stored.offsets.map((offset, i) => [offset, stored.values[i]]));
    const missing = acked.filter((o) => storedByOffset.get(o.ack?.offset ?? 0) !== o.n);
    report('persist sqlite', 'kill -9 during a burst', { attempted: loop.outcomes.length, acknowledged: acked.length, stored: stored.offsets.length, missing: missing.length });
    expect(missing.map((o) => o.n)).toEqual([]);
    expect(new Set(stored.values).size).toBe(stored.values.length);
    expect(stored.offsets).toEqual(seq(1, stored.offsets.length));
  }, 120_000);

  it('a client away while 2,000 messages were posted gets all of them once, in order: recovery says what it cannot replay, history pages back', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'relais-persist-')), 'data');
    const relais = await instance(dataDir);
    const channel = 'chat:away';
    const client: SdkClient = run.on(await sdkClient(relais, 'away'), (c) => c.close());
    const sub = client.subscribe(channel);
    const subscribed: SubscribedContext[] = [];
    sub.on('subscribed', (ctx) => subscribed.push(ctx));
    await sub.ready(5000);
    const zero = new PublishLoop({ channel, target: () => relais, concurrency: 1, numbers: () => 0 }).start(1);
    await zero.done();
    await until(() => client.pubs(channel).length === 1, 5000, 'first message');
    client.centrifuge.disconnect();
    const loop = new PublishLoop({ channel, target: () => relais, concurrency: 16 }).start(2000);
    await withTimeout(loop.done(), 60_000, 'posting 2,000');
    client.centrifuge.connect();
    await until(() => subscribed.length === 2, 10_000, 'subscribed again');
    const back = subscribed[1];
    // More than recovery_max_publications (1,000): nothing is replayed, and the client is told.
    expect({ wasRecovering: back?.wasRecovering, recovered: back?.recovered, offset: back?.streamPosition?.offset }).toEqual({ wasRecovering: true, recovered: false, offset: 2001 });
    const epoch = back?.streamPosition?.epoch ?? '';
    const missed: { offset: number; n: number }[] = [];
    let cursor = 2002;
    for (let pages = 0; cursor > 2 && pages < 20; pages++) {
      const page = await sub.history({ limit: 200, reverse: true, since: { offset: cursor, epoch } });
      for (const pub of page.publications) if ((pub.offset ?? 0) > 1) missed.push({ offset: pub.offset ?? 0, n: (pub.data as { n: number }).n });
      cursor = page.publications.at(-1)?.offset ?? 0;
    }
    missed.reverse();
    const { expected } = expectedSequence([zero, loop]);
    expect(missed.map((m) => m.offset)).toEqual(seq(2, 2001));
    expect(missed.map((m) => m.n)).toEqual(expected.slice(1));
    await relais.call('publish', { channel, data: { n: 9999 } });
    await until(() => client.pubs(channel).length === 2, 5000, 'live again');
    expect(client.pubs(channel).map((p) => p.offset)).toEqual([1, 2002]);
  }, 120_000);
});

describeWithBus('persistent channels on PostgreSQL, three instances over Redis', await sharedStoreMissing(), () => {
  const suite = sharedStoreSuite('persist');
  const { run, secrets } = suite;
  const instance = (env: Record<string, string>): Promise<RelaisProcess> => suite.instance(env);

  it('publishers on every instance: each subscriber gets contiguous offsets with their data; all of it survives a restart of every instance', async () => {
    const env = await suite.env();
    let nodes = await Promise.all([instance(env), instance(env), instance(env)]);
    const channel = 'chat:cluster';
    const subscribers: LeanSubscriber[] = [];
    for (const [i, node] of nodes.entries()) {
      const token = await node.token(`sub-${i}`);
      for (let k = 0; k < 3; k++) subscribers.push(run.on(await LeanSubscriber.open({ url: () => nodes[i]?.wsUrl ?? '', token, channel, reconnect: true }), (s) => s.close()));
    }
    const numbers = ((n) => () => ++n)(0);
    const loops = nodes.map((node) => new PublishLoop({ channel, target: () => node, concurrency: 8, numbers }).start(700));
    await withTimeout(Promise.all(loops.map((l) => l.done())), 90_000, 'publishing 2,100 through three instances');
    const { expected } = expectedSequence(loops);
    await until(() => subscribers.every((s) => s.position.offset >= expected.length), 30_000, () => `subscribers at ${expected.length}: ${subscribers.map((s) => s.position.offset).join(',')}`);
    await sleep(200);
    const checks = subscribers.map((s, i) => checkDelivery({ name: `sub-${i}`, offsets: s.offsets, values: s.values, subscribedEvents: s.subscribedEvents }, expected));
    const sum = totals(checks);
    const resubscribes = subscribers.reduce((n, s) => n + s.unsubscribes.length, 0);
    report('persist postgres', 'three instances publishing', { published: expected.length, subscribers: sum.subscribers, delivered: sum.delivered, outOfOrder: sum.outOfOrder, duplicated: sum.duplicated, lost: sum.lost, resubscribes });
    expectClean('three publishing instances', checks);
    // Broadcasts of three publishers cross on the bus; each node puts them back in order
    // itself, so no subscriber is sent through recovery for it.
    expect(resubscribes).toBe(0);

    for (const node of nodes) expect(await node.stop()).toBe(0);
    nodes = await Promise.all([instance(env), instance(env), instance(env)]);
    const stored = await storedHistory(nodes[1], channel);
    expect(stored.offsets).toEqual(seq(1, expected.length));
    expect(stored.values).toEqual(expected);
  }, 180_000);

  it('after the Redis server restarted empty while a client was away, it recovers from the store: recovered, every missed message once, in order', async () => {
    const bus = run.on(await PrivateBus.reserve('redis'), (b) => b.dispose());
    await bus.start();
    const env = { ...(await suite.env()), ...busEnv('redis', bus.url, 'relais-persist') };
    const [a, b] = await Promise.all([instance(env), instance(env)]);
    if (!a || !b) throw new Error('instances');
    const channel = 'chat:outlives';
    const token = await b.token('away');
    const first = await LeanSubscriber.open({ url: () => b.wsUrl, token, channel });
    const zero = new PublishLoop({ channel, target: () => a, concurrency: 1, numbers: () => 0 }).start(1);
    await zero.done();
    await first.untilOffset(1, 5000);
    const since = first.position;
    first.close();

    const loop = new PublishLoop({ channel, target: () => a, concurrency: 8 }).start(400);
    await withTimeout(loop.done(), 60_000, 'publishing while away');
    await bus.kill();
    await bus.start();
    await until(async () => (await readyz(a)) === 200 && (await readyz(b)) === 200, 30_000, 'instances ready after the Redis restart');
    const more = new PublishLoop({ channel, target: () => a, concurrency: 8, numbers: ((n) => () => ++n)(400) }).start(400);
    await withTimeout(more.done(), 60_000, 'publishing after the Redis restart');

    const back = run.on(await LeanSubscriber.open({ url: () => b.wsUrl, token, channel, since }), (s) => s.close());
    const { expected } = expectedSequence([zero, loop, more]);
    await back.untilOffset(expected.length, 20_000);
    const resumed = back.subscribedEvents[0];
    expect({ wasRecovering: resumed?.wasRecovering, recovered: resumed?.recovered, epoch: resumed?.epoch }).toEqual({ wasRecovering: true, recovered: true, epoch: since.epoch });
    expect(back.offsets).toEqual(seq(2, expected.length));
    expect(back.values).toEqual(expected.slice(1));
  }, 180_000);

  it('PostgreSQL stopped and started again: publishes are refused as temporary errors meanwhile, everything else keeps serving, nothing acknowledged is lost', async () => {
    const pg = await PrivatePostgres.create();
    run.on(pg, (p) => p.dispose());
    await pg.start();
    const env = {
      DATABASE_URL: pg.url(),
      DB_POOL_CONNECTION_TIMEOUT: '1000',
      DB_QUERY_TIMEOUT: '2000',
      ...busEnv('redis', SHARED_URL.redis, `relais-persist-pg-${randomBytes(4).toString('hex')}`),
    };
    const relais = await startRelais({
      env: { ...secrets, ...env },
      config: { namespaces: { feed: { history_size: 100, history_ttl: '1h' } } },
    });
    run.processes.push(relais);
    const channel = 'chat:outage';
    const reader = run.on(await LeanSubscriber.open({ url: () => relais.wsUrl, token: await relais.token('reader'), channel, reconnect: true }), (s) => s.close());
    const loop = new PublishLoop({ channel, target: () => relais, concurrency: 4, paceMs: 5 }).start();
    await until(() => loop.acked.length >= 200, 30_000, '200 acknowledged before the outage');

    await pg.stop();
    const down = Date.now();
    await until(async () => (await readyz(relais)) === 503, 10_000, '/readyz says the store is down');
    const readiness = await fetch(`${relais.httpUrl}/readyz`).then((r) => r.json() as Promise<{ reasons: string[] }>);
    expect(readiness.reasons.join(' ')).toMatch(/durable store unreachable/);
    // Not persistent: served as before.
    expect((await relais.api('publish', { channel: 'feed:still', data: { ok: true } })).status).toBe(200);
    await sleep(1500);
    await pg.start();
    await until(async () => (await readyz(relais)) === 200, 30_000, '/readyz back after the store returned');
    const upAgainAt = Date.now();
    await until(() => loop.outcomes.some((o) => o.ack && o.ack.at > upAgainAt), 30_000, 'publishes acknowledged again');
    await loop.stop();

    const refusedWhileDown = loop.outcomes.flatMap((o) => o.attempts).filter((a) => a.startedAt >= down && a.status !== 200);
    expect(refusedWhileDown.length).toBeGreaterThan(0);
    for (const attempt of refusedWhileDown) {
      expect({ status: attempt.status, code: attempt.error?.code, temporary: attempt.error?.temporary }).toEqual({ status: 503, code: 100, temporary: true });
    }
    const { expected } = expectedSequence(loop);
    const stored = await storedHistory(relais, channel);
    expect(stored.values).toEqual(expected);
    await reader.untilOffset(expected.length, 20_000);
    expectClean('reader across the outage', [checkDelivery({ name: 'reader', offsets: reader.offsets, values: reader.values, subscribedEvents: reader.subscribedEvents }, expected)]);
    report('persist postgres', 'database outage', { acknowledged: expected.length, refusedWhileDown: refusedWhileDown.length, outageMs: upAgainAt - down });
  }, 180_000);
});
