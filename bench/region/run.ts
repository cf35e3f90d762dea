/**
 * Two regions, simulated (issue 14, multi-region): a "home" instance next to Redis and a
 * "remote" instance whose link to Redis adds a delay each way (bench/region/wan_link.ts),
 * one subscriber on each. Measures, while the home region publishes: the delivery latency in
 * each region, the acknowledgement latency of a publish made in the remote region; then cuts
 * the remote region off for a while and measures what its publishers and subscribers see.
 *
 *   node --import tsx bench/region/run.ts [--delay-ms 40] [--seconds 10] [--cut-seconds 5] [--rate 20]
 *
 * Relais runs from dist/ (npm run build first); Redis is the machine's (REDIS_URL, default
 * redis://127.0.0.1:6379), under a prefix of its own deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { deletePrefix } from '../../test/helpers/buses.js';
import { Child, installExitHandlers, killAll } from '../children.js';
import { connectionToken } from '../load/jwt.js';
import { quantileOf } from '../metrics.js';
import { freePort, sleep, waitForPort } from '../net.js';
import { RELAIS_MAIN } from '../targets/relais.js';
import { WanLink } from './wan_link.js';

const { values } = parseArgs({
  options: {
    'delay-ms': { type: 'string', default: '40' },
    seconds: { type: 'string', default: '10' },
    'cut-seconds': { type: 'string', default: '5' },
    rate: { type: 'string', default: '20' },
  },
});
const delayMs = Number(values['delay-ms']);
const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const redisPort = Number(new URL(redisUrl).port || 6379);
const CHANNEL = 'feed:region';
const tag = randomBytes(4).toString('hex');
const prefix = `relais-region-${tag}`;
const secret = `region-secret-${tag}-0123456789`;
const apiKey = `region-key-${tag}`;

interface Instance {
  readonly name: string;
  readonly port: number;
  readonly child: Child;
}

async function instance(name: string, busUrl: string): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), `relais-region-${name}-`));
  const config = join(dir, 'relais.json');
  writeFileSync(
    config,
    JSON.stringify({ namespaces: { feed: { history_size: 10_000, history_ttl: '10m', force_recovery: true, recovery_max_publications: 10_000 } } }),
  );
  const port = await freePort();
  const child = new Child({
    name,
    nodeArgs: [RELAIS_MAIN, 'serve'],
    env: { PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', REDIS_URL: busUrl, RELAIS_BUS_PREFIX: prefix, RELAIS_TOKEN_SECRET: secret, RELAIS_API_KEY: apiKey, RELAIS_CONFIG: config, RELAIS_DATA_DIR: join(dir, 'data') },
    ipc: false,
  });
  await waitForPort(port, 20_000, () => child.gone());
  return { name, port, child };
}

/** A subscriber that reconnects and recovers from its last position, recording each delivery's latency. */
class Subscriber {
  readonly latencies: number[] = [];
  readonly offsets: number[] = [];
  recoveries = 0;
  private ws: WebSocket | undefined;
  private offset = 0;
  private epoch = '';
  private stopped = false;

  constructor(private readonly port: number) {
    this.dial();
  }

  get position(): number {
    return this.offset;
  }

  close(): void {
    this.stopped = true;
    this.ws?.terminate();
  }

  private dial(): void {
    if (this.stopped) return;
    const ws = new WebSocket(`ws://127.0.0.1:${this.port}/connection/websocket`);
    this.ws = ws;
    const subscribe = (): void => {
      const recover = this.epoch !== '' ? { recover: true, offset: this.offset, epoch: this.epoch } : {};
      ws.send(JSON.stringify({ id: 2, subscribe: { channel: CHANNEL, ...recover } }));
    };
    ws.on('open', () => ws.send(JSON.stringify({ id: 1, connect: { token: connectionToken(secret, 'watcher') } })));
    ws.on('message', (data: Buffer) => {
      const text = data.toString();
      if (text === '{}') return void ws.send('{}');
      const frame = JSON.parse(text) as {
        id?: number;
        connect?: unknown;
        subscribe?: { epoch?: string; offset?: number; recovered?: boolean; publications?: { offset: number; data: { t: number } }[] };
        error?: { temporary?: boolean };
        push?: { pub?: { offset: number; data: { t: number } }; unsubscribe?: { code: number } };
      };
      if (frame.id === 1 && frame.connect) subscribe();
      else if (frame.id === 2 && frame.subscribe) {
        if (frame.subscribe.recovered) this.recoveries++;
        for (const pub of frame.subscribe.publications ?? []) this.deliver(pub);
        this.epoch = frame.subscribe.epoch ?? '';
        this.offset = Math.max(this.offset, frame.subscribe.offset ?? 0);
      } else if (frame.id === 2 && frame.error) setTimeout(subscribe, 200);
      else if (frame.push?.pub) this.deliver(frame.push.pub);
      else if (frame.push?.unsubscribe && frame.push.unsubscribe.code >= 2500) setTimeout(subscribe, 100);
    });
    ws.on('error', () => undefined);
    ws.on('close', () => setTimeout(() => this.dial(), 250));
  }

  private deliver(pub: { offset: number; data: { t: number } }): void {
    this.offsets.push(pub.offset);
    this.offset = pub.offset;
    this.latencies.push(Date.now() - pub.data.t);
  }
}

async function publish(port: number, n: number): Promise<{ ok: boolean; ms: number; status: number }> {
  const started = Date.now();
  try {
    const response = await fetch(`http://127.0.0.1:${port}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
      body: JSON.stringify({ channel: CHANNEL, data: { n, t: started } }),
      signal: AbortSignal.timeout(10_000),
    });
    await response.arrayBuffer();
    return { ok: response.status === 200, ms: Date.now() - started, status: response.status };
  } catch {
    return { ok: false, ms: Date.now() - started, status: 0 };
  }
}

/** Publishes at `rate` per second through `port` for `ms`; every answer, in order of sending. */
async function paced(port: number, rate: number, ms: number, counter: { n: number }): Promise<{ ok: boolean; ms: number; status: number }[]> {
  const answers: Promise<{ ok: boolean; ms: number; status: number }>[] = [];
  const until = Date.now() + ms;
  while (Date.now() < until) {
    answers.push(publish(port, ++counter.n));
    await sleep(1000 / rate);
  }
  return Promise.all(answers);
}

const fmt = (values: readonly number[], q: number): string => {
  const v = quantileOf(values, q);
  return v === null ? '-' : String(Math.round(v));
};

async function main(): Promise<void> {
  installExitHandlers();
  const link = await WanLink.open(redisPort, delayMs);
  try {
    const home = await instance('home', redisUrl);
    const remote = await instance('remote', `redis://127.0.0.1:${link.port}`);
    const atHome = new Subscriber(home.port);
    const atRemote = new Subscriber(remote.port);
    await sleep(1500);
    const rate = Number(values.rate);
    const counter = { n: 0 };
    const steadyMs = Number(values.seconds) * 1000;

    const [homeAcks, remoteAcks] = await Promise.all([paced(home.port, rate, steadyMs, counter), paced(remote.port, rate / 4, steadyMs, counter)]);
    await sleep(500);
    const steadyHome = atHome.latencies.splice(0);
    const steadyRemote = atRemote.latencies.splice(0);

    const cutMs = Number(values['cut-seconds']) * 1000;
    const cutAt = Date.now();
    link.cut();
    const [homeDuringCut, remoteDuringCut] = await Promise.all([paced(home.port, rate, cutMs, counter), paced(remote.port, rate / 4, cutMs, counter)]);
    link.restore();
    const restoredAt = Date.now();
    const top = counter.n;
    const deadline = Date.now() + 60_000;
    while (atRemote.position < top - remoteDuringCut.filter((a) => !a.ok).length && Date.now() < deadline) await sleep(50);
    const caughtUpMs = Date.now() - restoredAt;
    const seen = new Set(atRemote.offsets);
    const missing = [...Array(atRemote.position).keys()].map((i) => i + 1).filter((o) => !seen.has(o)).length;

    const rows = [
      `| delivery latency, home subscriber, steady (ms) | ${fmt(steadyHome, 0.5)} | ${fmt(steadyHome, 0.99)} |`,
      `| delivery latency, remote subscriber, steady (ms) | ${fmt(steadyRemote, 0.5)} | ${fmt(steadyRemote, 0.99)} |`,
      `| publish acknowledgement, home (ms) | ${fmt(homeAcks.map((a) => a.ms), 0.5)} | ${fmt(homeAcks.map((a) => a.ms), 0.99)} |`,
      `| publish acknowledgement, remote (ms) | ${fmt(remoteAcks.map((a) => a.ms), 0.5)} | ${fmt(remoteAcks.map((a) => a.ms), 0.99)} |`,
    ];
    console.log(`Two regions: the remote instance's link to Redis adds ${delayMs} ms each way (${2 * delayMs} ms round trip); home publishes ${rate}/s, remote ${rate / 4}/s.\n`);
    console.log('| figure | p50 | p99 |');
    console.log('|---|---:|---:|');
    for (const row of rows) console.log(row);
    console.log('');
    console.log(`Remote region cut off for ${cutMs / 1000} s: home publishes acknowledged ${homeDuringCut.filter((a) => a.ok).length}/${homeDuringCut.length}; remote publishes acknowledged ${remoteDuringCut.filter((a) => a.ok).length}/${remoteDuringCut.length} (refused: ${[...new Set(remoteDuringCut.filter((a) => !a.ok).map((a) => a.status))].join(', ') || 'none'}), answered within ${Math.max(...remoteDuringCut.map((a) => a.ms))} ms at most.`);
    console.log(`After the link came back (cut at +0, restored at +${restoredAt - cutAt} ms), the remote subscriber had every publication ${caughtUpMs} ms later, through ${atRemote.recoveries} recovery; offsets missing: ${missing}.`);
    atHome.close();
    atRemote.close();
  } finally {
    await link.close();
    await killAll();
    await deletePrefix('redis', prefix).catch(() => 0);
  }
}

main().catch(async (err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  await killAll();
  process.exitCode = 1;
});
