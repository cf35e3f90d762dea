/**
 * Many Relais instances on one bus (issue 5, and the rolling restart of issue 4), run once
 * on the machine's Redis and once on its NATS JetStream, each run under its own prefix,
 * deleted afterwards. Instances are real processes; clients are the real `centrifuge` SDK,
 * lean raw-WebSocket subscribers and SSE streams, some behind a TCP round-robin balancer so
 * that they reconnect anywhere. Tests that stop the bus run a redis-server / nats-server of
 * their own on a spare port. Figures (published, delivered, duplicated, lost, times) are
 * printed.
 */
import { randomBytes } from 'node:crypto';
import { SubscriptionState } from 'centrifuge';
import { afterAll, afterEach, expect, it } from 'vitest';
import { TcpBalancer } from './helpers/balancer.js';
import { busEnv, deletePrefix, describeWithBus, PrivateBus, serverBinaryAvailable, sharedBusAvailable, SHARED_URL, type BusKind } from './helpers/buses.js';
import { sleep } from './helpers/clients.js';
import { LeanSubscriber } from './helpers/lean_subscriber.js';
import {
  checkAcrossEpochs,
  checkDelivery,
  expectedSequence,
  positionKey,
  PublishLoop,
  totals,
  type EpochDelivery,
} from './helpers/ledger.js';
import { expectClean, readyz, report, Resources, sseDelivery, until } from './helpers/cluster.js';
import { sample, scrape } from './helpers/metrics.js';
import { runRelaisToExit, startRelais, withTimeout, type RelaisProcess } from './helpers/relais.js';
import { SdkSubscriber } from './helpers/sdk_subscriber.js';
import { EventSourceClient, RawSseStream } from './helpers/sse.js';


/** Short timings so that expiry and breaker behaviour fit in a test; history for every test's volume. */
const CONFIG = {
  presence_ttl: '4s',
  circuit_breaker: { failure_threshold: 5, open_duration: '2s' },
  sse: { max_streams_per_user: 50 },
  namespaces: {
    feed: {
      history_size: 12_000,
      history_ttl: '10m',
      force_recovery: true,
      recovery_max_publications: 12_000,
      allow_subscribe: 'authenticated',
    },
  },
};

const BUSES: readonly BusKind[] = ['redis', 'nats'];
const services = await Promise.all(BUSES.map(async (kind) => ({ kind, service: await sharedBusAvailable(kind), binary: await serverBinaryAvailable(kind) })));

for (const { kind, service, binary } of services) {
  const missing = !service
    ? `no ${kind} at ${SHARED_URL[kind]}${kind === 'nats' ? ' with JetStream' : ''}`
    : !binary
      ? `no ${kind === 'redis' ? 'redis-server' : 'nats-server'} binary to run a private bus`
      : undefined;
  describeWithBus(`cluster on ${kind}`, missing, () => {
    const prefix = `relais-cluster-${kind}-${randomBytes(4).toString('hex')}`;
    const secrets = { RELAIS_TOKEN_SECRET: `cluster-secret-${randomBytes(8).toString('hex')}`, RELAIS_API_KEY: `cluster-key-${randomBytes(8).toString('hex')}` };
    const run = new Resources();

    afterEach(async () => {
      await run.release();
    });

    afterAll(async () => {
      await run.release();
      // Instances are gone: nothing writes under the prefix any more.
      const deleted = await deletePrefix(kind, prefix);
      report(kind, 'cleanup', { prefix, deletedKeys: kind === 'redis' ? deleted : 'streams and buckets' });
    });

    /** One Relais instance of this run's cluster (same bus, prefix and secrets). */
    async function instance(url = SHARED_URL[kind], config: Record<string, unknown> = CONFIG): Promise<RelaisProcess> {
      const relais = await startRelais({ env: { ...busEnv(kind, url, prefix), ...secrets }, config });
      run.processes.push(relais);
      return relais;
    }

    async function sdk(name: string, url: string, token: string, channel: string): Promise<SdkSubscriber> {
      return run.on(await SdkSubscriber.open(name, url, token, channel), (s) => s.close());
    }

    async function lean(url: () => string, token: string, channel: string, reconnect = false, since?: { offset: number; epoch: string }): Promise<LeanSubscriber> {
      return run.on(await LeanSubscriber.open({ url, token, channel, reconnect, ...(since ? { since } : {}) }), (s) => s.close());
    }

    it('3 instances: 10,000 publications on instance 1 reach every subscriber of every instance once, in offset order', async () => {
      const channel = 'feed:fanout';
      const total = 10_000;
      const nodes = await Promise.all([instance(), instance(), instance()]);
      const sdks: SdkSubscriber[] = [];
      const leans: LeanSubscriber[] = [];
      const streams: RawSseStream[] = [];
      for (const [i, node] of nodes.entries()) {
        for (let k = 0; k < 2; k++) sdks.push(await sdk(`sdk-${i}-${k}`, node.wsUrl, await node.token(`sdk-${i}-${k}`), channel));
        const token = await node.token(`lean-${i}`);
        leans.push(...(await Promise.all(Array.from({ length: 8 }, () => lean(() => node.wsUrl, token, channel)))));
        const stream = run.on(
          await RawSseStream.open(`${node.httpUrl}/sse?channel=${channel}`, { authorization: `Bearer ${await node.token(`sse-${i}`)}` }),
          (s) => s.close(),
        );
        await stream.waitFor((s) => s.events.some((e) => e.type === 'subscribed'), 10_000, `SSE stream ${i} subscribed`);
        streams.push(stream);
      }

      const started = Date.now();
      const loop = new PublishLoop({ channel, target: () => nodes[0], concurrency: 16 }).start(total);
      await withTimeout(loop.done(), 120_000, 'publishing 10,000 did not finish');
      const publishMs = Date.now() - started;
      const refused = loop.outcomes.filter((o) => !o.ack);
      expect(refused.map((o) => o.attempts), 'every publication acknowledged').toEqual([]);
      const { expected } = expectedSequence(loop);

      const sseCount = (s: RawSseStream): number => s.events.length - 1;
      await until(
        () => sdks.every((s) => s.count >= total) && leans.every((s) => s.count >= total) && streams.every((s) => sseCount(s) >= total),
        60_000,
        () => `every subscriber at ${total} (sdk ${sdks.map((s) => s.count).join(',')}; lean min ${Math.min(...leans.map((s) => s.count))}; sse ${streams.map(sseCount).join(',')})`,
      );
      const deliveredMs = Date.now() - started;
      await sleep(200); // anything sent twice would arrive now

      const checks = [
        ...sdks.map((s) => checkDelivery(s, expected)),
        ...leans.map((s, i) => checkDelivery({ name: `lean-${i}`, offsets: s.offsets, values: s.values, subscribedEvents: s.subscribedEvents }, expected)),
        ...streams.map((s, i) => checkDelivery(sseDelivery(`sse-${i}`, s.publications()), expected)),
      ];
      const sum = totals(checks);
      report(kind, 'fan-out', {
        published: loop.acked.length,
        subscribers: `${sum.subscribers} (${sdks.length} sdk, ${leans.length} lean, ${streams.length} sse)`,
        delivered: sum.delivered,
        duplicated: sum.duplicated,
        lost: sum.lost,
        outOfOrder: sum.outOfOrder,
        publishMs,
        publishRate: Math.round((total * 1000) / publishMs),
        allDeliveredMs: deliveredMs,
      });
      expectClean('fan-out', checks);
      expect(sum.delivered).toBe(total * checks.length);
    }, 180_000);

    it('kill -9 of an instance while 1,000 publications flow: its clients reconnect elsewhere and recover everything, no duplicate', async () => {
      const channel = 'feed:failover';
      const total = 1000;
      const nodes = await Promise.all([instance(), instance(), instance()]);
      const [victim, publisher] = nodes;
      const balancer = run.on(await TcpBalancer.start(nodes.map((n) => n.port)), (b) => b.close());
      // Round robin: each group of three lands one per instance.
      const sdks: SdkSubscriber[] = [];
      for (let i = 0; i < 9; i++) sdks.push(await sdk(`sdk-${i}`, balancer.wsUrl, await publisher.token(`sdk-${i}`), channel));
      const token = await publisher.token('lean');
      const leans: LeanSubscriber[] = [];
      for (let i = 0; i < 6; i++) leans.push(await lean(() => balancer.wsUrl, token, channel, true));
      const sources: EventSourceClient[] = [];
      for (let i = 0; i < 3; i++) {
        const source = run.on(new EventSourceClient(`${balancer.httpUrl}/sse?channel=${channel}`, { token: await publisher.token(`sse-${i}`) }), (s) => s.close());
        await source.waitForNamed('subscribed', 1);
        sources.push(source);
      }
      expect(nodes.map((n) => balancer.openTo(n.port))).toEqual([6, 6, 6]);

      const loop = new PublishLoop({ channel, target: () => publisher, concurrency: 4, paceMs: 5 }).start(total);
      await until(() => loop.acked.length >= 300, 30_000, '300 publications acknowledged');
      const killedAt = Date.now();
      await victim.kill9();
      balancer.markDead(victim.port);
      const ackedAtKill = loop.acked.length;
      await withTimeout(loop.done(), 60_000, 'publishing 1,000 did not finish');
      expect(loop.outcomes.filter((o) => !o.ack).map((o) => o.attempts), 'every publication acknowledged').toEqual([]);
      const { expected } = expectedSequence(loop);

      const sseAt = (s: EventSourceClient): number => s.publications().at(-1)?.offset ?? 0;
      await until(
        () => sdks.every((s) => s.position.offset >= total) && leans.every((s) => s.position.offset >= total) && sources.every((s) => sseAt(s) >= total),
        30_000,
        () => `every subscriber at ${total} (sdk ${sdks.map((s) => s.position.offset).join(',')}; lean ${leans.map((s) => s.position.offset).join(',')}; sse ${sources.map(sseAt).join(',')})`,
      );
      await sleep(200);

      const moved = sdks.filter((s) => s.reconnects.length > 0);
      const movedLean = leans.filter((s) => s.closes.length > 0);
      const movedSse = sources.filter((s) => s.named('subscribed').length > 1);
      expect([moved.length, movedLean.length, movedSse.length], 'the victim held a third of each kind').toEqual([3, 2, 1]);
      // Their first subscribe after the kill recovered everything they missed.
      for (const s of moved) expect(s.subscribedEvents.at(1), s.name).toMatchObject({ wasRecovering: true, recovered: true });
      for (const s of movedLean) expect(s.subscribedEvents.at(1)).toMatchObject({ wasRecovering: true, recovered: true });
      for (const s of movedSse) expect(s.named('subscribed').at(1)).toMatchObject({ was_recovering: true, recovered: true });
      const recoveryMs = [
        ...moved.map((s) => (s.subscribedEvents.at(1)?.at ?? Number.NaN) - killedAt),
        ...movedLean.map((s) => (s.subscribedEvents.at(1)?.at ?? Number.NaN) - killedAt),
      ];

      const checks = [
        ...sdks.map((s) => checkDelivery(s, expected)),
        ...leans.map((s, i) => checkDelivery({ name: `lean-${i}`, offsets: s.offsets, values: s.values, subscribedEvents: s.subscribedEvents }, expected)),
        ...sources.map((s, i) => checkDelivery(sseDelivery(`sse-${i}`, s.publications()), expected)),
      ];
      const sum = totals(checks);
      report(kind, 'kill -9', {
        published: loop.acked.length,
        ackedAtKill,
        subscribers: sum.subscribers,
        moved: `${moved.length} sdk, ${movedLean.length} lean, ${movedSse.length} sse`,
        delivered: sum.delivered,
        duplicated: sum.duplicated,
        lost: sum.lost,
        recoverMsMax: Math.max(...recoveryMs),
        recoverMsMin: Math.min(...recoveryMs),
      });
      expectClean('kill -9', checks);
      expect(sum.delivered).toBe(total * checks.length);
    }, 120_000);

    it('bus stopped and started again: acknowledged means delivered (or announced lost with history), refused means 503 code 100 temporary', async () => {
      const channel = 'feed:outage';
      const bus = run.on(await PrivateBus.reserve(kind), (b) => b.dispose());
      await bus.start();
      const nodes = await Promise.all([instance(bus.url), instance(bus.url)]);
      const [a, b] = nodes;
      // The channel exists before anyone subscribes: every subscriber starts at a real position.
      await a.call('publish', { channel, data: { n: 0 } });

      const sdks: SdkSubscriber[] = [];
      const leans: LeanSubscriber[] = [];
      const sources: EventSourceClient[] = [];
      for (const [i, node] of nodes.entries()) {
        for (let k = 0; k < 2; k++) sdks.push(await sdk(`sdk-${i}-${k}`, node.wsUrl, await node.token(`sdk-${i}-${k}`), channel));
        const token = await node.token(`lean-${i}`);
        for (let k = 0; k < 3; k++) leans.push(await lean(() => node.wsUrl, token, channel, true));
        const source = run.on(new EventSourceClient(`${node.httpUrl}/sse?channel=${channel}`, { token: await node.token(`sse-${i}`) }), (s) => s.close());
        await source.waitForNamed('subscribed', 1);
        sources.push(source);
      }
      const errorsBefore = sample(await scrape(a), 'relais_broker_errors_total', { operation: 'publish' });

      const loop = new PublishLoop({ channel, target: () => a, concurrency: 4, paceMs: 20 }).start();
      await until(() => loop.acked.length >= 100, 20_000, '100 publications acknowledged before the outage');
      const killStarted = Date.now();
      await bus.kill();
      const killedAt = Date.now();

      // Down: the publishing instance is not ready and its breaker opens (an idle instance: see the readiness test).
      await until(async () => (await readyz(a)) === 503, 8_000, '/readyz 503 on the publishing instance');
      const notReadyMs = Date.now() - killedAt;
      await until(async () => sample(await scrape(a), 'relais_circuit_breaker_state') === 2, 8_000, 'circuit breaker open');
      const openedMs = Date.now() - killedAt;
      await sleep(Math.max(0, killedAt + 3000 - Date.now()));

      await bus.start();
      const upAt = Date.now();
      await until(async () => (await Promise.all(nodes.map(readyz))).every((s) => s === 200), 30_000, '/readyz 200 on every instance');
      const readyMs = Date.now() - upAt;
      await until(() => loop.acked.filter((o) => (o.ack?.at ?? 0) > upAt).length >= 100, 30_000, '100 publications acknowledged after the restart');
      const firstAckMs = Math.min(...loop.acked.map((o) => o.ack?.at ?? Infinity).filter((t) => t > upAt)) - upAt;
      await loop.stop();
      const after = await scrape(a);

      // Afterwards publishing works again, through either instance.
      for (const node of [a, b]) {
        const reply = await node.api('publish', { channel: 'feed:after-outage', data: { ok: true } });
        expect(reply.status).toBe(200);
      }

      // Everything refused was refused as documented: 503, code 100, temporary.
      const refused = loop.outcomes.filter((o) => !o.ack);
      const shapes = new Set(refused.map((o) => JSON.stringify({ status: o.attempts[0]?.status, code: o.attempts[0]?.error?.code, temporary: o.attempts[0]?.error?.temporary })));
      expect([...shapes]).toEqual(refused.length > 0 ? [JSON.stringify({ status: 503, code: 100, temporary: true })] : []);
      expect(refused.length).toBeGreaterThan(0);
      // A publish in flight when the bus died may have reached it: its outcome is unknown to the publisher.
      const inFlight = new Set(refused.filter((o) => (o.attempts[0]?.startedAt ?? 0) < killedAt && (o.attempts[0]?.endedAt ?? 0) >= killStarted).map((o) => o.n));

      const acked = loop.ackedByPosition();
      const epochOrder = [...new Set(loop.acked.map((o) => o.ack?.epoch ?? ''))];
      const finalEpoch = epochOrder.at(-1) ?? '';
      const finalOffset = Math.max(...loop.acked.filter((o) => o.ack?.epoch === finalEpoch).map((o) => o.ack?.offset ?? 0));
      const ssePosition = (s: EventSourceClient): string => {
        const last = [...s.events].reverse().find((e) => e.type === 'message' || e.type === 'subscribed');
        const p = last ? (JSON.parse(last.data) as { offset?: number; epoch?: string }) : {};
        return positionKey(p.epoch ?? '', p.offset ?? 0);
      };
      const target = positionKey(finalEpoch, finalOffset);
      await until(
        () =>
          sdks.every((s) => positionKey(s.position.epoch, s.position.offset) === target) &&
          leans.every((s) => positionKey(s.position.epoch, s.position.offset) === target) &&
          sources.every((s) => ssePosition(s) === target),
        30_000,
        () =>
          `every subscriber at ${target} (sdk ${sdks.map((s) => positionKey(s.position.epoch, s.position.offset)).join(',')}; lean ${leans
            .map((s) => positionKey(s.position.epoch, s.position.offset))
            .join(',')}; sse ${sources.map(ssePosition).join(',')})`,
      );
      await sleep(200);

      const deliveries: EpochDelivery[] = [
        ...sdks,
        ...leans.map((s, i) => ({ name: `lean-${i}`, offsets: s.offsets, epochs: s.epochs, values: s.values, subscribedEvents: s.subscribedEvents })),
        ...sources.map((s, i) => ({
          ...sseDelivery(`sse-${i}`, s.publications()),
          subscribedEvents: s.named('subscribed').map((e) => ({
            wasRecovering: e['was_recovering'] === true,
            recovered: e['recovered'] === true,
            offset: Number(e['offset'] ?? 0),
            epoch: typeof e['epoch'] === 'string' ? e['epoch'] : '',
          })),
        })),
      ];
      const checks = deliveries.map((d) => checkAcrossEpochs(d, acked, epochOrder, inFlight));
      const sum = totals(checks);
      const announcedLost = checks.reduce((n, c) => n + c.announcedLost, 0);
      const announcedLostLastEpoch = checks.reduce((n, c) => n + c.announcedLostLastEpoch, 0);
      const notices = checks.reduce((n, c) => n + c.notices, 0);
      const refusedButDelivered = checks.reduce((n, c) => n + c.refusedButDelivered, 0);
      report(kind, 'bus restart', {
        attempted: loop.outcomes.length,
        acknowledged: loop.acked.length,
        refused: refused.length,
        inFlightAtKill: inFlight.size,
        epochs: epochOrder.length,
        subscribers: sum.subscribers,
        delivered: sum.delivered,
        duplicated: sum.duplicated,
        lost: sum.lost,
        announcedLost: `${announcedLost} (${announcedLost - announcedLostLastEpoch} of the lost epoch, ${announcedLostLastEpoch} of the new one before the subscriber rejoined)`,
        recoveredFalse: notices,
        refusedButDelivered,
        notReadyMs,
        breakerOpenMs: openedMs,
        readyAfterRestartMs: readyMs,
        firstAckAfterRestartMs: firstAckMs,
      });

      expect(sample(after, 'relais_broker_errors_total', { operation: 'publish' })).toBeGreaterThan(errorsBefore);
      expect(sample(after, 'relais_circuit_breaker_state')).toBe(0);
      expectClean('bus restart', checks);
      if (kind === 'redis') {
        // No persistence: the restarted Redis has no history, the channel restarts under a new epoch.
        expect(epochOrder.length).toBe(2);
        // Every subscriber was told: its position's lineage is gone.
        expect(checks.map((c) => c.notices > 0)).toEqual(checks.map(() => true));
        expect(Math.min(...loop.acked.filter((o) => o.ack?.epoch === finalEpoch).map((o) => o.ack?.offset ?? 0))).toBe(1);
      } else {
        // JetStream keeps history on disk: the same lineage goes on, and nothing is lost or announced lost.
        expect(epochOrder).toHaveLength(1);
        expect({ announcedLost, notices }).toEqual({ announcedLost: 0, notices: 0 });
      }
    }, 150_000);

    it('subscribes on one instance while publications flow through another: neither a gap nor a duplicate between recovery and the live stream', async () => {
      const channel = 'feed:race';
      const [publisher, other] = await Promise.all([instance(), instance()]);
      const token = await other.token('racer');
      const loop = new PublishLoop({ channel, target: () => publisher, concurrency: 8 }).start();
      await until(() => loop.acked.length >= 50, 20_000, 'publications flowing');
      const rounds: { subscriber: LeanSubscriber; since: { offset: number; epoch: string } | undefined }[] = [];
      const stopAt = Date.now() + 7000;
      while (Date.now() < stopAt) {
        // In turn: fresh; recovering from 20 behind the newest acknowledged publication; and
        // from the newest itself, which this instance may not have received live yet.
        const newest = loop.acked.at(-1)?.ack;
        const behind = [undefined, 20, 0][rounds.length % 3];
        const since = behind !== undefined && newest ? { offset: Math.max(0, newest.offset - behind), epoch: newest.epoch } : undefined;
        const subscriber = await lean(() => other.wsUrl, token, channel, false, since);
        await sleep(150);
        subscriber.close();
        rounds.push({ subscriber, since });
        // Long enough for the instance to drop its interest: the next subscribe may go to the bus again.
        await sleep(100);
      }
      await loop.stop();
      const problems: string[] = [];
      for (const [i, { subscriber: s, since }] of rounds.entries()) {
        const start = s.subscribedEvents[0];
        if (!start) throw new Error(`round ${i} never subscribed`);
        if (since && !start.recovered) problems.push(`round ${i}: not recovered from ${since.offset}`);
        // From its position on (since; or, fresh, the position before the publications its
        // subscribe result carried), every offset once and in order.
        const from = since ? since.offset : start.offset - start.replayed;
        const expected = Array.from({ length: s.count }, (_, k) => from + 1 + k);
        if (JSON.stringify(s.offsets) !== JSON.stringify(expected)) {
          problems.push(`round ${i} (${since ? `from ${since.offset}, ${start.replayed} replayed` : 'fresh'}, position ${start.offset}): ${s.offsets.slice(0, 40).join(',')}`);
        }
      }
      report(kind, 'subscribe races', { rounds: rounds.length, published: loop.acked.length, broken: problems.length });
      expect(problems).toEqual([]);
    }, 60_000);

    it('/readyz of an instance that publishes nothing is 503 while the bus is down, 200 once it is back', async () => {
      const bus = run.on(await PrivateBus.reserve(kind), (b) => b.dispose());
      await bus.start();
      const node = await instance(bus.url);
      expect(await readyz(node)).toBe(200);
      await bus.kill();
      const killedAt = Date.now();
      // The probe waits 2 s for the bus to answer a ping.
      await until(async () => (await readyz(node)) === 503, 8_000, '/readyz 503 while the bus is down');
      const notReadyMs = Date.now() - killedAt;
      const body = (await (await fetch(`${node.httpUrl}/readyz`, { signal: AbortSignal.timeout(5000) })).json()) as { reasons?: string[] };
      expect(body.reasons?.join(' ')).toMatch(/message bus/);
      await bus.start();
      const upAt = Date.now();
      await until(async () => (await readyz(node)) === 200, 20_000, '/readyz 200 once the bus is back');
      report(kind, 'readiness', { notReadyAfterBusDownMs: notReadyMs, readyAfterBusUpMs: Date.now() - upAt });
    }, 60_000);

    it('presence: the entries of an instance killed with 100 clients vanish from every other instance within presence_ttl plus one refresh', async () => {
      const channel = 'chat:lobby';
      const nodes = await Promise.all([instance(), instance(), instance()]);
      const [victim, ...others] = nodes;
      const doomed: LeanSubscriber[] = [];
      for (let batch = 0; batch < 5; batch++) {
        const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => victim.token(`doomed-${batch * 20 + i}`)));
        doomed.push(...(await Promise.all(tokens.map((token) => lean(() => victim.wsUrl, token, channel)))));
      }
      const survivors: LeanSubscriber[] = [];
      for (const [i, node] of others.entries()) {
        for (let k = 0; k < 5; k++) survivors.push(await lean(() => node.wsUrl, await node.token(`survivor-${i}-${k}`), channel));
      }
      const doomedIds = new Set(doomed.map((s) => s.clientId));
      const survivorIds = survivors.map((s) => s.clientId);
      const presenceOn = async (node: RelaisProcess): Promise<Set<string>> =>
        new Set(Object.keys((await node.call<{ presence: Record<string, unknown> }>('presence', { channel })).presence));
      await until(
        async () => (await Promise.all(nodes.map(presenceOn))).every((ids) => ids.size === doomedIds.size + survivorIds.length),
        15_000,
        `${doomedIds.size + survivorIds.length} presence entries seen by every instance`,
      );

      const ttlMs = 4000;
      const refreshMs = Math.max(1000, Math.floor(ttlMs / 3));
      await victim.kill9();
      const killedAt = Date.now();
      // A dead instance's entry counts as gone from the first answer after the last one that
      // still listed any of them: an answer missing entries by mistake cannot shorten the time.
      const clearSince = new Map<RelaisProcess, number | undefined>(others.map((n) => [n, undefined]));
      const deadline = killedAt + ttlMs + refreshMs + 5000;
      const settled = (): boolean => others.every((n) => (clearSince.get(n) ?? Infinity) <= Date.now() - 1000);
      while (!settled() && Date.now() < deadline) {
        for (const node of others) {
          const ids = await presenceOn(node);
          const anyDoomed = [...doomedIds].some((id) => ids.has(id));
          if (anyDoomed) clearSince.set(node, undefined);
          else if (clearSince.get(node) === undefined) clearSince.set(node, Date.now());
        }
        await sleep(100);
      }
      const perInstance = others.map((n) => (clearSince.get(n) ?? Number.POSITIVE_INFINITY) - killedAt);
      const convergenceMs = Math.max(...perInstance);
      report(kind, 'presence', {
        killedClients: doomedIds.size,
        survivingClients: survivorIds.length,
        presenceTtlMs: ttlMs,
        boundMs: ttlMs + refreshMs,
        convergenceMs,
        perInstanceMs: perInstance,
      });
      expect(convergenceMs).toBeLessThanOrEqual(ttlMs + refreshMs);
      // Every other instance then answers exactly the clients still connected.
      const expected = [...survivorIds].sort();
      await until(async () => (await Promise.all(others.map(presenceOn))).every((ids) => JSON.stringify([...ids].sort()) === JSON.stringify(expected)), 3000, 'presence of the surviving clients only');
    }, 90_000);

    it('presence answers list every live client while its instance refreshes the entries', async () => {
      const channel = 'chat:steady';
      const [holder, reader] = await Promise.all([instance(), instance()]);
      const clients: LeanSubscriber[] = [];
      for (let batch = 0; batch < 5; batch++) {
        const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => holder.token(`steady-${batch * 20 + i}`)));
        clients.push(...(await Promise.all(tokens.map((token) => lean(() => holder.wsUrl, token, channel)))));
      }
      const ids = clients.map((c) => c.clientId);
      const count = async (node: RelaisProcess): Promise<number> => {
        const presence = (await node.call<{ presence: Record<string, unknown> }>('presence', { channel })).presence;
        return ids.filter((id) => id in presence).length;
      };
      await until(async () => (await count(reader)) === ids.length, 15_000, `${ids.length} presence entries`);
      // Several refresh rounds (every presence_ttl / 3) while both instances are asked.
      const answers: number[] = [];
      const stopAt = Date.now() + 6000;
      while (Date.now() < stopAt) answers.push(...(await Promise.all([count(reader), count(reader), count(holder)])));
      const short = answers.filter((n) => n < ids.length);
      report(kind, 'presence reads', { answers: answers.length, missingEntries: short.length, smallest: Math.min(...answers) });
      expect(short).toEqual([]);
    }, 60_000);

    it('rolling restart with SIGTERM: clients get 3001 and move, every acknowledged publication reaches every SDK subscriber once, in order', async () => {
      const channel = 'feed:rolling';
      const originals = await Promise.all([instance(), instance(), instance()]);
      const live = [...originals];
      const balancer = run.on(await TcpBalancer.start(live.map((n) => n.port)), (b) => b.close());
      const sdks: SdkSubscriber[] = [];
      for (let i = 0; i < 6; i++) sdks.push(await sdk(`sdk-${i}`, balancer.wsUrl, await live[0]!.token(`roller-${i}`), channel));
      let turn = 0;
      const loop = new PublishLoop({
        channel,
        target: () => live[turn++ % live.length] as RelaisProcess,
        concurrency: 4,
        paceMs: 10,
        retryForMs: 30_000,
        idempotencyPrefix: `rolling-${prefix}`,
      }).start();
      await until(() => loop.acked.length >= 100, 20_000, '100 publications acknowledged');

      const started = Date.now();
      const restarts: { exit: number | null; stopMs: number; settledMs: number }[] = [];
      for (const old of originals) {
        const replacement = await instance();
        live.push(replacement);
        balancer.add(replacement.port);
        // Out of the balancer first (readiness), then SIGTERM: the instance drains its clients with 3001.
        balancer.markDead(old.port);
        live.splice(live.indexOf(old), 1);
        const t0 = Date.now();
        const exit = await old.stop();
        const stopMs = Date.now() - t0;
        const acked = loop.acked.length;
        await until(
          () => sdks.every((s) => s.subscription.state === SubscriptionState.Subscribed) && loop.acked.length >= acked + 50,
          20_000,
          'every SDK subscriber subscribed again and publications flowing',
        );
        restarts.push({ exit, stopMs, settledMs: Date.now() - t0 });
      }
      const rollMs = Date.now() - started;
      const ackedAtEnd = loop.acked.length;
      await until(() => loop.acked.length >= ackedAtEnd + 100, 20_000, '100 more publications after the restarts');
      await loop.stop();
      expect(loop.outcomes.filter((o) => !o.ack).map((o) => ({ n: o.n, attempts: o.attempts })), 'every publication acknowledged in the end').toEqual([]);
      const { expected } = expectedSequence(loop);
      await until(
        () => sdks.every((s) => s.position.offset >= expected.length),
        30_000,
        () => `every SDK subscriber at ${expected.length} (${sdks.map((s) => s.position.offset).join(',')})`,
      );
      await sleep(200);

      const checks = sdks.map((s) => checkDelivery(s, expected));
      const sum = totals(checks);
      const codes = sdks.flatMap((s) => s.reconnects.map((r) => r.code));
      report(kind, 'rolling restart', {
        published: loop.acked.length,
        retriedPublishes: loop.outcomes.filter((o) => o.attempts.length > 1).length,
        subscribers: sum.subscribers,
        delivered: sum.delivered,
        duplicated: sum.duplicated,
        lost: sum.lost,
        reconnectCodes: [...new Set(codes)],
        moves: codes.length,
        restarts,
        rollMs,
      });
      expect(restarts.map((r) => r.exit)).toEqual([0, 0, 0]);
      expect(sdks.map((s) => s.reconnects.length > 0)).toEqual(sdks.map(() => true));
      expect([...new Set(codes)]).toEqual([3001]);
      expectClean('rolling restart', checks);
      expect(sum.delivered).toBe(expected.length * checks.length);
    }, 150_000);

    it('start-up: an unreachable bus stops the instance with a message naming it; bus_start degraded waits, not ready, and recovers', async () => {
      const name = kind === 'redis' ? 'Redis' : 'NATS';
      const bus = run.on(await PrivateBus.reserve(kind), (b) => b.dispose());
      const refused = await runRelaisToExit({ env: { ...busEnv(kind, bus.url, prefix), ...secrets }, config: CONFIG }, 30_000);
      expect(refused.code).not.toBe(0);
      expect(refused.code).not.toBeNull();
      // One line says Relais cannot start, which bus (kind and address) is unreachable.
      const line = refused.output.split('\n').find((l) => l.includes('cannot start')) ?? '';
      expect(line, refused.output).toContain(`${name} bus at ${bus.url}`);
      expect(line).toMatch(/unreachable/);

      const node = await instance(bus.url, { ...CONFIG, bus_start: 'degraded' });
      expect(await readyz(node)).toBe(503);
      const degraded = await node.api('publish', { channel: 'feed:degraded', data: { n: 1 } });
      expect(degraded).toMatchObject({ status: 503, body: { error: { code: 100, temporary: true } } });

      await bus.start();
      const upAt = Date.now();
      await until(async () => (await readyz(node)) === 200, 20_000, '/readyz 200 once the bus is up');
      const readyMs = Date.now() - upAt;
      const subscriber = await lean(() => node.wsUrl, await node.token('late'), 'feed:degraded');
      const published = await node.call<{ offset: number; epoch: string }>('publish', { channel: 'feed:degraded', data: { n: 2 } });
      expect(published.offset).toBe(1);
      await subscriber.untilOffset(1, 10_000);
      expect(subscriber.values).toEqual([2]);
      report(kind, 'start-up', { refusedExitCode: refused.code, refusedAfterMs: refused.ms, degradedReadyAfterBusUpMs: readyMs });
    }, 90_000);
  });
}
