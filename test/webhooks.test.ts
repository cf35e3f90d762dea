/**
 * Lifecycle webhooks across three Relais instances, on each kind of bus: the machine's Redis
 * and NATS (a unique prefix each), a Redis Cluster of 3 masters started by the test, and one
 * `relais serve --workers 3` with no bus (the primary's). A real HTTP server in the test
 * receives the events and checks every signature. 200 raw WebSocket clients spread over the
 * instances join and leave one channel together, three times: each transition of the
 * channel (occupied, vacated) is reported exactly once cluster-wide, every subscription's end
 * and every closed connection once. An instance killed with its subscribers (a worker, for
 * --workers) has its channel vacated by another once its liveness lapses (once it exits).
 * Under CI=true a missing Redis or NATS fails the suite.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { busEnv, deletePrefix, describeWithBus, serverBinaryAvailable, sharedBusAvailable, SHARED_URL } from './helpers/buses.js';
import { RawClient, sleep } from './helpers/clients.js';
import { report, Resources, until } from './helpers/cluster.js';
import { RedisClusterFixture } from './helpers/redis_topologies.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

interface ReceivedEvent {
  readonly type: string;
  readonly node: string;
  readonly channel?: string;
  readonly client?: string;
  readonly code?: number;
}

/** The backend: collects events, refusing (401) and counting any request whose signature is wrong. */
class WebhookReceiver {
  readonly events: ReceivedEvent[] = [];
  badSignatures = 0;
  requests = 0;
  readonly server: Server;
  url = '';

  private constructor(secret: string) {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
        const given = Buffer.from(String(req.headers['x-relais-signature'] ?? ''));
        this.requests++;
        if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        this.events.push(...(JSON.parse(body.toString()) as { events: ReceivedEvent[] }).events);
        res.writeHead(204).end();
      });
    });
  }

  static async start(secret: string): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(secret);
    await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve));
    const address = receiver.server.address();
    receiver.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/hooks`;
    return receiver;
  }

  count(type: string, channel?: string): number {
    return this.events.filter((e) => e.type === type && (channel === undefined || e.channel === channel)).length;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** How a test gets its instances: separate processes on a bus, or the workers of one process. */
interface Topology {
  readonly name: string;
  readonly missing: string | undefined;
  /** Setup before the tests (a Redis Cluster to start). */
  before?(): Promise<void>;
  after(): Promise<void>;
  /** `count` instances sharing the environment; one entry per instance (the same process for workers). */
  start(count: number, env: Record<string, string>, config: Record<string, unknown>): Promise<RelaisProcess[]>;
}

/** The pid of the process serving as `node` (its listening line names both). */
function pidOfNode(processes: readonly RelaisProcess[], node: string): number | undefined {
  for (const p of processes) {
    for (const line of p.logs.join('\n').split('\n')) {
      if (!line.includes(node) || !line.includes('listening on')) continue;
      const pid = (JSON.parse(line) as { pid?: unknown }).pid;
      if (typeof pid === 'number') return pid;
    }
  }
  return undefined;
}

function busTopology(name: string, kind: 'redis' | 'nats', missing: string | undefined, url: () => string, cleanup: (prefix: string) => Promise<unknown>): Topology & { prefix(): string } {
  const prefixes: string[] = [];
  return {
    name,
    missing,
    prefix: () => {
      const prefix = kind === 'nats' ? `relais_webhooks_${randomBytes(4).toString('hex')}` : `relais-webhooks-${randomBytes(4).toString('hex')}`;
      prefixes.push(prefix);
      return prefix;
    },
    async after() {
      for (const prefix of prefixes.splice(0)) await cleanup(prefix);
    },
    start(count, env, config) {
      const prefix = this.prefix();
      return Promise.all(Array.from({ length: count }, () => startRelais({ env: { ...busEnv(kind, url(), prefix), ...env }, config })));
    },
  };
}

let redisCluster: RedisClusterFixture | undefined;
const topologies: Topology[] = [
  busTopology('Redis', 'redis', (await sharedBusAvailable('redis')) ? undefined : `no Redis at ${SHARED_URL.redis}`, () => SHARED_URL.redis, (p) => deletePrefix('redis', p)),
  busTopology('NATS', 'nats', (await sharedBusAvailable('nats')) ? undefined : `no NATS with JetStream at ${SHARED_URL.nats}`, () => SHARED_URL.nats, (p) => deletePrefix('nats', p)),
  {
    ...busTopology('Redis Cluster', 'redis', (await serverBinaryAvailable('redis')) ? undefined : 'no redis-server binary', () => redisCluster?.url ?? '', () => Promise.resolve()),
    async before() {
      redisCluster = await RedisClusterFixture.start(3);
    },
    async after() {
      await redisCluster?.stop();
      redisCluster = undefined;
    },
  },
  {
    name: 'serve --workers, no bus',
    missing: undefined,
    after: () => Promise.resolve(),
    async start(count, env, config) {
      const server = await startRelais({ env, config, workers: count });
      return Array.from({ length: count }, () => server);
    },
  },
];

for (const topology of topologies) describeWithBus(`lifecycle webhooks across three instances (${topology.name})`, topology.missing, () => {
  const run = new Resources();
  if (topology.before) beforeAll(() => topology.before?.(), 60_000);
  afterEach(() => run.release());
  afterAll(() => topology.after());

  async function cluster(count: number, secret: string, receiver: WebhookReceiver, config: Record<string, unknown> = {}): Promise<RelaisProcess[]> {
    const env = { RELAIS_WEBHOOK_URL: receiver.url, RELAIS_WEBHOOK_SECRET: secret, RELAIS_TOKEN_SECRET: `webhooks-${randomBytes(4).toString('hex')}` };
    const nodes = await topology.start(count, env, config);
    run.processes.push(...new Set(nodes));
    return nodes;
  }

  async function clients(nodes: readonly RelaisProcess[], count: number): Promise<RawClient[]> {
    const all: RawClient[] = [];
    for (let i = 0; i < count; i += 20) {
      const wave = await Promise.all(
        Array.from({ length: Math.min(20, count - i) }, async (_, k) => {
          const node = nodes[(i + k) % nodes.length] as RelaisProcess;
          const client = run.on(await RawClient.open(node), (c) => c.close());
          await client.connect(await node.token(`user-${i + k}`));
          return client;
        }),
      );
      all.push(...wave);
    }
    return all;
  }

  let nextId = 10;
  async function command(client: RawClient, method: 'subscribe' | 'unsubscribe', channel: string): Promise<void> {
    const id = ++nextId;
    client.sendCommands({ id, [method]: { channel } });
    const reply = await client.reply(id);
    if (reply['error']) throw new Error(`${method} failed: ${JSON.stringify(reply['error'])}`);
  }

  it('200 clients joining and leaving a channel three times: occupied and vacated once per transition, every end and close reported, signatures valid', async () => {
    const secret = randomBytes(24).toString('hex');
    const receiver = run.on(await WebhookReceiver.start(secret), (r) => r.close());
    const nodes = await cluster(3, secret, receiver);
    const channel = `lobby-${randomBytes(3).toString('hex')}`;
    const everyone = await clients(nodes, 200);
    const ids = new Set<string>();
    for (const c of everyone) ids.add(String(((c.messages[0]?.['connect'] ?? {}) as { client?: string }).client));

    for (let round = 1; round <= 3; round++) {
      await Promise.all(everyone.map((c) => command(c, 'subscribe', channel)));
      await until(() => receiver.count('channel_occupied', channel) >= round, 10_000, () => `occupied #${round}: ${receiver.count('channel_occupied', channel)}`);
      if (round < 3) {
        await Promise.all(everyone.map((c) => command(c, 'unsubscribe', channel)));
      } else {
        // The last round leaves by closing the connections: their subscriptions end with them.
        for (const c of everyone) c.close();
      }
      await until(() => receiver.count('channel_vacated', channel) >= round, 10_000, () => `vacated #${round}: ${receiver.count('channel_vacated', channel)}`);
    }
    await until(() => receiver.count('connection_closed') >= 200 && receiver.count('unsubscribed', channel) >= 600, 10_000, () =>
      `closed ${receiver.count('connection_closed')}, unsubscribed ${receiver.count('unsubscribed', channel)}`,
    );
    // Anything sent twice would arrive within the batch wait: give it a few.
    await sleep(1000);
    expect(receiver.badSignatures).toBe(0);
    expect(receiver.count('channel_occupied', channel)).toBe(3);
    expect(receiver.count('channel_vacated', channel)).toBe(3);
    expect(receiver.count('unsubscribed', channel)).toBe(600);
    const closed = receiver.events.filter((e) => e.type === 'connection_closed');
    expect(closed.length).toBe(200);
    expect(new Set(closed.map((e) => e.client))).toEqual(ids);
    expect(new Set(receiver.events.map((e) => e.node)).size).toBe(3);
    report(`webhooks ${topology.name}`, '3 rounds', { instances: 3, clients: 200, rounds: 3, requests: receiver.requests, events: receiver.events.length });
  });

  it('the channel of an instance killed with its subscribers is vacated once, by another instance, when its liveness lapses', async () => {
    const secret = randomBytes(24).toString('hex');
    const receiver = run.on(await WebhookReceiver.start(secret), (r) => r.close());
    const nodes = await cluster(2, secret, receiver, { presence_ttl: '3s' });
    const channel = `orphan-${randomBytes(3).toString('hex')}`;
    const [onA] = await clients([nodes[0] as RelaisProcess], 1);
    await command(onA as RawClient, 'subscribe', channel);
    await until(() => receiver.count('channel_occupied', channel) === 1, 10_000, 'occupied');
    const aId = receiver.events.find((e) => e.type === 'channel_occupied')?.node ?? '';
    const pid = pidOfNode(nodes, aId);
    expect(pid, `the listening line of node ${aId}`).toBeDefined();
    const killed = nodes.find((p) => p.child.pid === pid);
    if (killed) await killed.kill9();
    else process.kill(pid ?? 0, 'SIGKILL');
    await until(() => receiver.count('channel_vacated', channel) === 1, 15_000, 'vacated after the kill');
    await sleep(2000);
    expect(receiver.count('channel_vacated', channel)).toBe(1);
    expect(receiver.events.find((e) => e.type === 'channel_vacated')?.node).not.toBe(aId);
  });
});
