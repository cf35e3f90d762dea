/**
 * Reconnects under faults (issue 14): 3 Relais instances over a bus of the run's own (a
 * private redis-server or nats-server on a spare port, never the shared one), SDK subscribers
 * given the list of instances, a publisher through the HTTP API, and a fault every few
 * seconds: an instance killed (kill -9) and restarted, an instance paused (SIGSTOP, SIGCONT
 * later), the bus restarted. Prints where each reconnection's time went, per fault kind, and
 * what the subscribers received against what was acknowledged. Bounded: --duration-s of
 * faults, then at most 60 s for the subscribers to catch up.
 *
 *   node --import tsx bench/faults/run.ts --bus redis|nats [--duration-s 180] [--subscribers 30]
 *     [--fault-every-s 15] [--pause-s 20] [--ping-interval 25s] [--pong-timeout 8s]
 *     [--kinds kill,pause,bus-restart,kill-in-bus-outage]
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { mintToken } from '../../client/token.js';
import { busEnv, freePort, PrivateBus, type BusKind } from '../../test/helpers/buses.js';
import { PublishLoop } from '../../test/helpers/ledger.js';
import { startRelais, type RelaisProcess } from '../../test/helpers/relais.js';
import { repoRoot } from '../children.js';
import { sleep } from '../net.js';
import { breakdownTable, deliveryTotals, episodes, FAULT_KINDS, type Fault, type FaultKind } from './breakdown.js';
import { ObservedClient } from './observed_client.js';

const { values } = parseArgs({
  options: {
    bus: { type: 'string', default: 'redis' },
    'duration-s': { type: 'string', default: '180' },
    subscribers: { type: 'string', default: '30' },
    'fault-every-s': { type: 'string', default: '15' },
    'pause-s': { type: 'string', default: '20' },
    'ping-interval': { type: 'string', default: '25s' },
    'pong-timeout': { type: 'string', default: '8s' },
    kinds: { type: 'string', default: FAULT_KINDS.join(',') },
    rate: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench/results' },
  },
});

const bus = values.bus === 'nats' ? 'nats' : values.bus === 'redis' ? 'redis' : undefined;
if (bus === undefined) throw new Error('--bus: redis or nats');
const durationMs = Number(values['duration-s']) * 1000;
const subscriberCount = Number(values.subscribers);
const faultEveryMs = Number(values['fault-every-s']) * 1000;
const pauseMs = Number(values['pause-s']) * 1000;
const rate = Number(values.rate);
const kinds = values.kinds.split(',').filter((k): k is FaultKind => (FAULT_KINDS as readonly string[]).includes(k));
if (![durationMs, subscriberCount, faultEveryMs, pauseMs, rate].every((n) => Number.isFinite(n) && n > 0) || kinds.length === 0) throw new Error('bad arguments');

const INSTANCES = 3;
const CHANNEL = 'faults:stream';
const RESTART_AFTER_MS = 2000;
/** A bus outage during which an instance is killed. */
const BUS_OUTAGE_MS = 6000;
const CATCH_UP_MS = 60_000;

const log = (line: string): void => {
  process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${line}\n`);
};

const live = new Set<RelaisProcess>();
let privateBus: PrivateBus | undefined;
process.on('exit', () => {
  for (const p of live) p.child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

async function main(): Promise<void> {
  const kind: BusKind = bus ?? 'redis';
  privateBus = await PrivateBus.reserve(kind);
  await privateBus.start();
  const tag = randomBytes(4).toString('hex');
  const secret = `faults-secret-${tag}-0123456789abcdef`;
  const apiKey = `faults-key-${tag}`;
  const config = {
    namespaces: { faults: { history_size: 100_000, history_ttl: '10m', force_recovery: true, allow_subscribe: 'authenticated' } },
    client: { ping_interval: values['ping-interval'], pong_timeout: values['pong-timeout'], max_connections_per_user: 0 },
  };
  const ports = await Promise.all(Array.from({ length: INSTANCES }, () => freePort()));
  const env = (port: number): Record<string, string> => ({
    PORT: String(port),
    RELAIS_TOKEN_SECRET: secret,
    RELAIS_API_KEY: apiKey,
    ...busEnv(kind, privateBus?.url ?? '', `faults-${tag}`),
  });
  const start = async (port: number): Promise<RelaisProcess> => {
    const p = await startRelais({ config, env: env(port), startTimeoutMs: 30_000 });
    live.add(p);
    return p;
  };
  const instances: RelaisProcess[] = [];
  for (const port of ports) instances.push(await start(port));
  const urls = ports.map((port) => `ws://127.0.0.1:${port}/connection/websocket`);
  log(`${kind} on ${privateBus.url}, instances on ${ports.join(', ')}, ping interval ${values['ping-interval']}`);

  const clients: ObservedClient[] = [];
  for (let i = 0; i < subscriberCount; i++) {
    const client = new ObservedClient({ name: `sub-${i}`, urls: () => urls, first: i % INSTANCES, token: await mintToken(secret, { user: `u${i}` }), channel: CHANNEL });
    clients.push(client);
  }
  await Promise.all(clients.map((c) => c.start(20_000)));
  log(`${clients.length} subscribers subscribed`);

  const faulted = new Set<number>();
  let turn = 0;
  const publisher = new PublishLoop({
    channel: CHANNEL,
    target: () => {
      const healthy = instances.map((p, i) => ({ p, i })).filter(({ i }) => !faulted.has(i));
      const pick = healthy[turn++ % Math.max(1, healthy.length)] ?? { p: instances[0] as RelaisProcess };
      return { httpUrl: pick.p.httpUrl, apiKey };
    },
    concurrency: 1,
    retryForMs: 60_000,
    idempotencyPrefix: `faults-${tag}`,
    paceMs: 1000 / rate,
  }).start();

  const faults: Fault[] = [];
  const began = Date.now();
  let n = 0;
  while (Date.now() - began < durationMs) {
    await sleep(faultEveryMs / 2);
    const faultKind = kinds[n % kinds.length] as FaultKind;
    // The instance most clients are on (the previous faults moved them around).
    const sessions = urls.map((url) => clients.filter((c) => c.instance === url).length);
    const index = sessions.indexOf(Math.max(...sessions));
    n++;
    const target = instances[index] as RelaisProcess;
    const fault: Fault = { kind: faultKind, at: Date.now(), instance: faultKind === 'bus-restart' ? '' : (urls[index] ?? ''), endAt: 0 };
    faults.push(fault);
    if (faultKind === 'kill') {
      faulted.add(index);
      await target.kill9();
      live.delete(target);
      await sleep(RESTART_AFTER_MS);
      instances[index] = await start(ports[index] ?? 0);
      faulted.delete(index);
    } else if (faultKind === 'pause') {
      faulted.add(index);
      target.child.kill('SIGSTOP');
      await sleep(pauseMs);
      target.child.kill('SIGCONT');
      faulted.delete(index);
    } else if (faultKind === 'kill-in-bus-outage') {
      // Its clients reconnect to instances that have no bus: how their subscribes are answered.
      await privateBus.kill();
      faulted.add(index);
      await target.kill9();
      live.delete(target);
      await sleep(BUS_OUTAGE_MS);
      await privateBus.start();
      instances[index] = await start(ports[index] ?? 0);
      faulted.delete(index);
    } else {
      await privateBus.kill();
      await sleep(RESTART_AFTER_MS);
      await privateBus.start();
    }
    fault.endAt = Date.now();
    log(`${faultKind}${fault.instance ? ` ${fault.instance}` : ''}: ${fault.endAt - fault.at} ms`);
    await sleep(Math.max(0, faultEveryMs / 2 - (fault.endAt - fault.at)));
  }
  await publisher.stop();
  const acked = new Map<number, number>();
  for (const o of publisher.outcomes) if (o.ack) acked.set(o.n, o.ack.at);
  const refused = publisher.outcomes.filter((o) => !o.ack).length;
  const deadline = Date.now() + CATCH_UP_MS;
  const caughtUp = (): boolean => clients.every((c) => [...acked.keys()].every((k) => c.received.some((r) => r.n === k)));
  while (Date.now() < deadline && !caughtUp()) await sleep(500);
  await sleep(500);

  const all = episodes(clients, faults);
  const delivery = deliveryTotals(clients, acked);
  const table = breakdownTable(all);
  const summary = `${kind}, ${INSTANCES} instances, ${clients.length} SDK subscribers (default SDK backoff), ${faults.length} faults over ${Math.round((Date.now() - began) / 1000)} s (${counts(faults.map((f) => f.kind))}), ping interval ${values['ping-interval']}; ${acked.size} publications acknowledged (${refused} never), delivered against them: missing ${delivery.missing} of ${delivery.expected} (${delivery.missingTold} of them followed by an unrecovered resubscribe: the SDK said recovered: false), duplicates ${delivery.duplicates}, out of order ${delivery.outOfOrder}`;
  console.log(`${summary}\n\n${table}\n`);
  const outDir = resolve(repoRoot, values.out);
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `${new Date().toISOString().replace(/[:.]/g, '-')}-faults-${kind}`);
  writeFileSync(`${base}.md`, `${summary}\n\n${table}\n`);
  const timelines = clients.map((c) => ({ name: c.options.name, events: c.events, attempts: c.attempts }));
  writeFileSync(`${base}.json`, `${JSON.stringify({ summary, faults, episodes: all, delivery, timelines })}\n`);
  log(`results: ${base}.{md,json}`);
  for (const c of clients) c.close();
}

function counts(list: readonly string[]): string {
  const map = new Map<string, number>();
  for (const k of list) map.set(k, (map.get(k) ?? 0) + 1);
  return [...map].map(([k, v]) => `${v} ${k}`).join(', ');
}

main()
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exitCode = 1;
  })
  .finally(async () => {
    await Promise.all([...live].map((p) => p.kill9().catch(() => undefined)));
    await privateBus?.dispose();
    process.exit();
  });
