/**
 * Telemetry (issue 11): device readings in over MQTT, windowed aggregates out to a dashboard
 * over SSE. Relais with its embedded broker, Relais reading the machine's Mosquitto, and seed
 * 003 case 2's design (mqtt.js worker with arrays per window + `redis.publish`, and its SSE
 * server), side by side in one run.
 *
 *   node --import tsx bench/telemetry/run.ts [--targets relais,relais-mosquitto,seed]
 *        [--rate 50000] [--seconds 10] [--devices 10000] [--window 2000] [--loads 2]
 *        [--idle-streams 1000]
 *
 * Per target: `--loads` device processes publish `--rate` readings/s (QoS 0) for `--seconds`;
 * one dashboard stream without filter receives every window. Figures: readings counted in
 * the aggregates the dashboard got (per second of load), the time from each window's end to
 * its event at the dashboard (p50, p99), the server's CPU, and the server memory of idle
 * dashboard streams (RSS growth over `--idle-streams` streams). Relais runs from dist/ (npm
 * run build first). Mosquitto at 127.0.0.1:1883 and Redis at 127.0.0.1:6379 for the
 * Mosquitto and seed targets.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { mintToken } from '../../client/token.js';
import { Child, extraNodeFlags, installExitHandlers, killAll, repoRoot } from '../children.js';
import { Histogram } from '../metrics.js';
import { freePort, sleep, waitForPort } from '../net.js';
import { cpuTimeUs, rssBytes } from '../procstat.js';
import { RELAIS_MAIN } from '../targets/relais.js';
import type { DevicesRun, FromDevices } from './devices.js';

const TARGETS = ['relais', 'relais-mosquitto', 'seed'] as const;
type TargetName = (typeof TARGETS)[number];
const MOSQUITTO_URL = 'mqtt://127.0.0.1:1883';
const REDIS_URL = 'redis://127.0.0.1:6379';

const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: TARGETS.join(',') },
    rate: { type: 'string', default: '50000' },
    seconds: { type: 'string', default: '10' },
    devices: { type: 'string', default: '10000' },
    window: { type: 'string', default: '2000' },
    loads: { type: 'string', default: '2' },
    'idle-streams': { type: 'string', default: '1000' },
  },
});
const windowMs = Number(values.window);

const log = (line: string): void => void process.stderr.write(`${line}\n`);

interface Running {
  /** Where devices publish. */
  readonly mqttUrl: string;
  readonly root: string;
  readonly port: number;
  /** Path and headers of a dashboard stream, `devices` its filter (empty: every device). */
  dashboard(devices: string): Promise<{ path: string; headers: Record<string, string> }>;
  readonly pids: () => number[];
  /** Time from a window's end to its close (Relais: allowed_lateness; the seed closes at its end). */
  readonly closeDelayMs: number;
  /** Readings the target refused (Relais: by reason, from /metrics); null when it does not say. */
  rejected(): Promise<Record<string, number> | null>;
  stop(): Promise<void>;
}

/** Relais's default telemetry.allowed_lateness. */
const RELAIS_LATENESS_MS = 500;

async function startTarget(name: TargetName): Promise<Running> {
  const port = await freePort();
  const tag = randomBytes(4).toString('hex');
  const root = `bench-${tag}/`;
  if (name === 'seed') {
    const prefix = `bench-telemetry-${tag}:`;
    const env = { REDIS_URL, MQTT_BROKER_URL: MOSQUITTO_URL, TOPIC_ROOT: root, KEY_PREFIX: prefix, WINDOW_MS: String(windowMs), PORT: String(port) };
    const worker = new Child({ name: 'seed-worker', nodeArgs: ['--import', 'tsx', join(repoRoot, 'bench/telemetry/seed_worker.ts')], env, ipc: false });
    const sse = new Child({ name: 'seed-sse', nodeArgs: ['--import', 'tsx', join(repoRoot, 'bench/telemetry/seed_sse.ts')], env, ipc: false });
    await waitForPort(port, 20_000, () => sse.gone() ?? worker.gone());
    // The worker subscribes once connected: give it the time to.
    await sleep(1500);
    return {
      mqttUrl: MOSQUITTO_URL,
      root,
      port,
      dashboard: (devices) => Promise.resolve({ path: `/api/metrics/stream?devices=${devices}`, headers: { authorization: 'Bearer seed' } }),
      pids: () => [worker.pid, sse.pid],
      closeDelayMs: 0,
      rejected: () => Promise.resolve(null),
      stop: async () => {
        await Promise.all([worker.kill(), sse.kill()]);
        const redis = new Redis(REDIS_URL);
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.del(...keys);
        redis.disconnect();
      },
    };
  }
  const mqttPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `relais-bench-telemetry-${tag}-`));
  const secret = `bench-secret-${tag}-0123456789`;
  const config = join(dir, 'relais.json');
  writeFileSync(
    config,
    JSON.stringify({
      client: { max_connections_per_user: 0 },
      sse: { max_streams_per_user: 0 },
      telemetry: {
        enabled: true,
        window: `${windowMs}ms`,
        // Simulated devices publish far above a real sensor's rate.
        device_rate_limit: { burst: 1_000_000, per_second: 0 },
        mqtt: { topic: `${root}devices/+/metrics`, shared_group: `bench${tag}`, port: mqttPort },
      },
    }),
  );
  const server = new Child({
    name,
    nodeArgs: [...extraNodeFlags(), RELAIS_MAIN, 'serve'],
    env: {
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      RELAIS_TOKEN_SECRET: secret,
      RELAIS_API_KEY: `bench-key-${tag}`,
      RELAIS_CONFIG: config,
      RELAIS_DATA_DIR: join(dir, 'data'),
      ...(name === 'relais-mosquitto' ? { MQTT_BROKER_URL: MOSQUITTO_URL } : {}),
    },
    ipc: false,
  });
  await waitForPort(port, 20_000, () => server.gone());
  const token = await mintToken(secret, { user: 'ops' });
  return {
    mqttUrl: name === 'relais' ? `mqtt://127.0.0.1:${mqttPort}` : MOSQUITTO_URL,
    root,
    port,
    dashboard: (devices) => Promise.resolve({ path: `/telemetry/stream${devices ? `?devices=${devices}` : ''}`, headers: { authorization: `Bearer ${token}` } }),
    pids: () => [server.pid],
    closeDelayMs: RELAIS_LATENESS_MS,
    rejected: async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const out: Record<string, number> = {};
      for (const match of text.matchAll(/^relais_telemetry_rejected_total\{reason="([A-Z_]+)"\} (\d+)/gm)) out[match[1] ?? '?'] = Number(match[2]);
      return out;
    },
    stop: async () => {
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The bench's dashboard: counts the readings in the aggregates it receives, and how late each event is. */
class DashboardReader {
  counted = 0;
  events = 0;
  readonly lateness = new Histogram();
  private readonly controller = new AbortController();
  private reading: Promise<void> = Promise.resolve();

  async open(port: number, path: string, headers: Record<string, string>): Promise<void> {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { headers, signal: this.controller.signal });
    if (!response.ok || !response.body) throw new Error(`dashboard stream answered ${response.status}`);
    this.reading = this.read(response.body);
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let pending = '';
    try {
      for await (const chunk of body) {
        const arrived = Date.now();
        pending += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          if (!block.startsWith('event: METRICS_UPDATE')) continue;
          const data = block.slice(block.indexOf('data: ') + 6);
          const aggregates = JSON.parse(data) as { count: number; windowEnd: number }[];
          this.events++;
          for (const a of aggregates) this.counted += a.count;
          const first = aggregates[0];
          if (first) this.lateness.recordMs(arrived - first.windowEnd);
        }
      }
    } catch {
      // Closed by close().
    }
  }

  async close(): Promise<void> {
    this.controller.abort();
    await this.reading;
  }
}

class DevicesLoad {
  private readonly child: ChildProcess;

  constructor() {
    this.child = fork(join(repoRoot, 'bench/telemetry/devices.ts'), { execArgv: ['--import', 'tsx'], cwd: repoRoot });
  }

  run(order: Omit<DevicesRun, 'type'>): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('device load did not finish')), (order.seconds + 60) * 1000);
      this.child.once('message', (m: FromDevices) => {
        clearTimeout(timer);
        if (m.type === 'done') resolve(m.sent);
        else reject(new Error(m.message));
      });
      this.child.send({ type: 'run', ...order } satisfies DevicesRun);
    });
  }

  stop(): void {
    this.child.kill();
  }
}

/** Opens `count` idle dashboard streams over raw sockets; resolves once each got its response head. */
async function idleStreams(port: number, path: string, headers: Record<string, string>, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  const head = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, () => {
        return new Promise<void>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1', () => socket.write(head));
          socket.once('data', () => resolve());
          socket.once('error', reject);
          socket.on('data', () => undefined);
          sockets.push(socket);
        });
      }),
    );
  }
  return sockets;
}

interface Figures {
  readonly sent: number;
  readonly counted: number;
  readonly perSecond: number;
  readonly events: number;
  readonly p50: number | null;
  readonly p99: number | null;
  /** p99 from the window's close (its end plus the target's lateness) to the dashboard. */
  readonly p99FromClose: number | null;
  readonly rejected: Record<string, number> | null;
  readonly cpuPercent: number | null;
  readonly cpuUsPerReading: number | null;
  readonly idleStreamBytes: number | null;
}

function totalCpu(pids: readonly number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    const us = cpuTimeUs(pid);
    if (us === null) return null;
    sum += us;
  }
  return sum;
}

function totalRss(pids: readonly number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    const bytes = rssBytes(pid);
    if (bytes === null) return null;
    sum += bytes;
  }
  return sum;
}

async function measure(name: TargetName): Promise<Figures> {
  const target = await startTarget(name);
  const loadCount = Number(values.loads);
  const loads = Array.from({ length: loadCount }, () => new DevicesLoad());
  const dashboard = new DashboardReader();
  try {
    const stream = await target.dashboard('');
    await dashboard.open(target.port, stream.path, stream.headers);
    const seconds = Number(values.seconds);
    const deviceIds = Array.from({ length: Number(values.devices) }, (_, i) => `dev-${i}`);
    const perLoad = Math.ceil(deviceIds.length / loadCount);
    const cpu0 = totalCpu(target.pids());
    const started = Date.now();
    const sent = (
      await Promise.all(
        loads.map((load, i) =>
          load.run({ url: target.mqttUrl, root: target.root, devices: deviceIds.slice(i * perLoad, (i + 1) * perLoad), rate: Number(values.rate) / loadCount, seconds }),
        ),
      )
    ).reduce((a, b) => a + b, 0);
    // The last windows close, merge and travel.
    await sleep(windowMs * 2 + 3000);
    const cpu1 = totalCpu(target.pids());
    const wallUs = (Date.now() - started) * 1000;
    await dashboard.close();
    const rejected = await target.rejected();

    const filter = deviceIds.slice(0, 10).join(',');
    const idle = await target.dashboard(filter);
    const rss0 = totalRss(target.pids());
    const sockets = await idleStreams(target.port, idle.path, idle.headers, Number(values['idle-streams']));
    await sleep(2000);
    const rss1 = totalRss(target.pids());
    for (const socket of sockets) socket.destroy();

    const cpuUs = cpu0 === null || cpu1 === null ? null : cpu1 - cpu0;
    return {
      sent,
      counted: dashboard.counted,
      perSecond: dashboard.counted / seconds,
      events: dashboard.events,
      p50: dashboard.lateness.quantileMs(0.5),
      p99: dashboard.lateness.quantileMs(0.99),
      p99FromClose: (() => {
        const p99 = dashboard.lateness.quantileMs(0.99);
        return p99 === null ? null : p99 - target.closeDelayMs;
      })(),
      rejected,
      cpuPercent: cpuUs === null ? null : (100 * cpuUs) / wallUs,
      cpuUsPerReading: cpuUs === null || dashboard.counted === 0 ? null : cpuUs / dashboard.counted,
      idleStreamBytes: rss0 === null || rss1 === null ? null : (rss1 - rss0) / sockets.length,
    };
  } finally {
    for (const load of loads) load.stop();
    await target.stop();
  }
}

const fmt = (n: number | null, digits = 0): string => (n === null || !Number.isFinite(n) ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

async function main(): Promise<void> {
  installExitHandlers();
  const names = (values.targets ?? '').split(',').filter((t): t is TargetName => (TARGETS as readonly string[]).includes(t));
  const load = (): string => (loadavg()[0] ?? 0).toFixed(1);
  const rows: string[] = [];
  const figures = new Map<TargetName, Figures>();
  for (const name of names) {
    const before = load();
    log(`${name}: ${values.rate} readings/s from ${values.devices} devices for ${values.seconds} s, ${windowMs} ms windows (load ${before})`);
    const f = await measure(name);
    figures.set(name, f);
    const line = `| ${name} | ${fmt(f.sent)} | ${fmt(f.counted)} | ${fmt(f.perSecond)} | ${fmt(f.events)} | ${fmt(f.p50)} | ${fmt(f.p99)} | ${fmt(f.p99FromClose)} | ${fmt(f.cpuPercent)} | ${fmt(f.cpuUsPerReading, 1)} | ${fmt(f.idleStreamBytes === null ? null : f.idleStreamBytes / 1024, 1)} | ${before} |`;
    rows.push(line);
    log(`  ${line}`);
    if (f.rejected && Object.keys(f.rejected).length > 0) log(`  refused: ${JSON.stringify(f.rejected)}`);
  }
  console.log(
    `Telemetry: ${values.rate} readings/s offered (QoS 0) by ${values.loads} device processes over ${values.devices} devices for ${values.seconds} s, ${windowMs} ms windows, one dashboard without filter; idle streams: ${values['idle-streams']} with a 10-device filter.\n`,
  );
  console.log('| target | readings sent | readings in aggregates | aggregated/s | events | window end → dashboard p50 ms | p99 ms | window close → dashboard p99 ms | server CPU % | server µs/reading | KB per idle stream | load (1 min) |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
  const seed = figures.get('seed')?.perSecond;
  if (seed) {
    console.log('');
    for (const [name, f] of figures) if (name !== 'seed') console.log(`- ${name}: ${(f.perSecond / seed).toFixed(2)}x the seed design's aggregated readings per second`);
  }
}

main()
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  })
  .finally(() => void killAll());
