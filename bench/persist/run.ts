/**
 * Persisted publishes (issue 10): messages stored before they are acknowledged and broadcast,
 * Relais on SQLite and on PostgreSQL against seed 003 case 1's design (Socket.IO and one
 * INSERT per message into PostgreSQL, then emit), side by side in one run.
 *
 *   node --import tsx bench/persist/run.ts [--targets relais-sqlite,relais-postgres,seed]
 *        [--publishers 64] [--subscribers 10] [--rate 1000] [--seconds 5] [--loads 2]
 *
 * Per target: a closed loop (every publisher connection sends its next message when the
 * last one is acknowledged: the largest rate the design sustains) and an open loop at
 * `--rate` messages/s (acknowledgement latency at a steady rate). Relais runs from dist/
 * (npm run build first). PostgreSQL: DATABASE_URL, default the machine's server, each target
 * in a fresh schema dropped afterwards.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createSchema, dropSchemas, newSchemaName, postgresUnreachable } from '../../test/helpers/postgres.js';
import { Child, extraNodeFlags, installExitHandlers, killAll, repoRoot } from '../children.js';
import { freePort, waitForPort } from '../net.js';
import { cpuTimeUs } from '../procstat.js';
import { RELAIS_MAIN } from '../targets/relais.js';
import type { FromLoad, LoadResult, LoadSetup, LoadStep } from './load.js';

const TARGETS = ['relais-sqlite', 'relais-postgres', 'seed'] as const;
type TargetName = (typeof TARGETS)[number];
const POSTGRES_URL = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

const { values } = parseArgs({
  options: {
    targets: { type: 'string', default: TARGETS.join(',') },
    publishers: { type: 'string', default: '64' },
    subscribers: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '5' },
    loads: { type: 'string', default: '2' },
  },
});

const log = (line: string): void => void process.stderr.write(`${line}\n`);

interface Running {
  readonly setup: Omit<LoadSetup, 'publishers' | 'subscribers'>;
  readonly server: Child;
  stop(): Promise<void>;
}

async function startTarget(name: TargetName): Promise<Running> {
  const port = await freePort();
  const tag = randomBytes(4).toString('hex');
  const schema = name === 'relais-sqlite' ? undefined : newSchemaName();
  if (schema) await createSchema(POSTGRES_URL, schema);
  const dir = mkdtempSync(join(tmpdir(), `relais-bench-persist-${tag}-`));
  const cleanup = async (): Promise<void> => {
    rmSync(dir, { recursive: true, force: true });
    if (schema) await dropSchemas(POSTGRES_URL, [schema]);
  };
  if (name === 'seed') {
    const server = new Child({
      name,
      nodeArgs: ['--import', 'tsx', join(repoRoot, 'bench/persist/seed_server.ts')],
      env: { PORT: String(port), DATABASE_URL: POSTGRES_URL, PG_SCHEMA: schema ?? '', DB_POOL_MAX: '20' },
      ipc: false,
    });
    await waitForPort(port, 20_000, () => server.gone());
    return { setup: { protocol: 'seed', url: `http://127.0.0.1:${port}`, channel: 'room-bench' }, server, stop: async () => (await server.kill(), await cleanup()) };
  }
  const tokenSecret = `bench-secret-${tag}-0123456789`;
  const config = join(dir, 'relais.json');
  // The embedded chat namespace (persistent), without the rate limits a bench exceeds at once.
  writeFileSync(config, JSON.stringify({ rate_limit: { connection: { burst: 1_000_000, per_second: 0 }, user: { burst: 1_000_000, per_second: 0 } }, client: { max_connections_per_user: 0 } }));
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    RELAIS_TOKEN_SECRET: tokenSecret,
    RELAIS_API_KEY: `bench-key-${tag}`,
    RELAIS_CONFIG: config,
    RELAIS_DATA_DIR: join(dir, 'data'),
    ...(schema ? { DATABASE_URL: POSTGRES_URL, RELAIS_DB_SCHEMA: schema } : {}),
  };
  const server = new Child({ name, nodeArgs: [...extraNodeFlags(), RELAIS_MAIN, 'serve'], env, ipc: false });
  await waitForPort(port, 20_000, () => server.gone());
  return { setup: { protocol: 'relais', url: `ws://127.0.0.1:${port}`, tokenSecret, channel: 'chat:bench' }, server, stop: async () => (await server.kill(), await cleanup()) };
}

/** One forked load process and its replies. */
class Load {
  private readonly child: ChildProcess;
  private readonly inbox: FromLoad[] = [];
  private waiter: ((m: FromLoad) => void) | undefined;

  constructor() {
    this.child = fork(join(repoRoot, 'bench/persist/load.ts'), { execArgv: ['--import', 'tsx'], cwd: repoRoot });
    this.child.on('message', (m: FromLoad) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(m);
      } else this.inbox.push(m);
    });
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  async ask(message: object, timeoutMs: number): Promise<FromLoad> {
    this.child.send(message);
    const reply =
      this.inbox.shift() ??
      (await new Promise<FromLoad>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('load process did not answer')), timeoutMs);
        this.waiter = (m) => {
          clearTimeout(timer);
          resolve(m);
        };
      }));
    if (reply.type === 'fatal') throw new Error(reply.message);
    return reply;
  }

  stop(): void {
    this.child.disconnect();
  }
}

interface StepFigures {
  readonly ackedPerSec: number;
  readonly p50: number | null;
  readonly p99: number | null;
  readonly errors: number;
  readonly serverCpuUsPerMessage: number | null;
  /** Deliveries over (acknowledged x subscribers): 1 when every subscriber got every message of the window. */
  readonly deliveredRatio: number;
}

function merge(results: readonly LoadResult[], subscribers: number, serverCpuUs: number | null): StepFigures {
  const acked = results.reduce((n, r) => n + r.acked, 0);
  const elapsed = Math.max(...results.map((r) => r.elapsedMs));
  // The median of the processes' p50 and the largest p99: merged histograms would be exact,
  // this is close enough for a table and errs on the slow side.
  const p50s = results.map((r) => r.latencyMs.p50 ?? 0).sort((a, b) => a - b);
  return {
    ackedPerSec: (acked * 1000) / elapsed,
    p50: p50s[Math.floor(p50s.length / 2)] ?? null,
    p99: Math.max(...results.map((r) => r.latencyMs.p99 ?? 0)),
    errors: results.reduce((n, r) => n + r.errors, 0),
    serverCpuUsPerMessage: serverCpuUs === null || acked === 0 ? null : serverCpuUs / acked,
    deliveredRatio: acked === 0 || subscribers === 0 ? 0 : results.reduce((n, r) => n + r.delivered, 0) / (acked * subscribers),
  };
}

async function measure(name: TargetName): Promise<{ closed: StepFigures; open: StepFigures }> {
  const target = await startTarget(name);
  const loadCount = Number(values.loads);
  const publishers = Number(values.publishers);
  const subscribers = Number(values.subscribers);
  const loads = Array.from({ length: loadCount }, () => new Load());
  try {
    // Subscribers all in the first load process; publishers shared.
    await Promise.all(
      loads.map((load, i) =>
        load.ask({ type: 'setup', setup: { ...target.setup, publishers: Math.ceil(publishers / loadCount), subscribers: i === 0 ? subscribers : 0 } }, 60_000),
      ),
    );
    const measureMs = Number(values.seconds) * 1000;
    const step = async (s: LoadStep): Promise<StepFigures> => {
      const cpu0 = cpuTimeUs(target.server.pid);
      const replies = await Promise.all(loads.map((load) => load.ask({ type: 'run', step: s }, measureMs + s.warmupMs + 60_000)));
      const cpu1 = cpuTimeUs(target.server.pid);
      const results = replies.flatMap((r) => (r.type === 'result' ? [r.result] : []));
      // CPU over the whole step (warm-up included) against what was acknowledged while measuring: an upper bound.
      return merge(results, subscribers, cpu0 === null || cpu1 === null ? null : ((cpu1 - cpu0) * measureMs) / (measureMs + s.warmupMs));
    };
    const closed = await step({ mode: 'closed', warmupMs: 1000, measureMs });
    const open = await step({ mode: 'open', warmupMs: 1000, measureMs, rate: Number(values.rate) / loadCount });
    return { closed, open };
  } finally {
    for (const load of loads) load.stop();
    await target.stop();
  }
}

const fmt = (n: number | null, digits = 0): string => (n === null || !Number.isFinite(n) ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));

async function main(): Promise<void> {
  installExitHandlers();
  const names = (values.targets ?? '').split(',').filter((t): t is TargetName => (TARGETS as readonly string[]).includes(t));
  if (names.some((n) => n !== 'relais-sqlite')) {
    const unreachable = await postgresUnreachable(POSTGRES_URL);
    if (unreachable) throw new Error(`PostgreSQL unreachable at ${POSTGRES_URL}: ${unreachable}`);
  }
  const rows: string[] = [];
  const figures = new Map<TargetName, { closed: StepFigures; open: StepFigures }>();
  for (const name of names) {
    log(`${name}: ${values.publishers} publishers, ${values.subscribers} subscribers`);
    const result = await measure(name);
    figures.set(name, result);
    for (const [mode, f] of [['closed loop', result.closed], [`${values.rate}/s`, result.open]] as const) {
      const line = `| ${name} | ${mode} | ${fmt(f.ackedPerSec)} | ${fmt(f.p50, 2)} | ${fmt(f.p99, 2)} | ${fmt(f.serverCpuUsPerMessage, 1)} | ${fmt(f.deliveredRatio, 3)} | ${f.errors} |`;
      rows.push(line);
      log(`  ${line}`);
    }
  }
  const seed = figures.get('seed')?.closed.ackedPerSec;
  console.log(`Persisted publishes: ${values.publishers} publisher connections over ${values.loads} load processes, ${values.subscribers} subscribers in the room, ${values.seconds} s per step after 1 s of warm-up.\n`);
  console.log('| target | load | acknowledged/s | p50 ms | p99 ms | server µs/message | delivered ratio | errors |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
  if (seed) {
    console.log('');
    for (const [name, f] of figures) if (name !== 'seed') console.log(`- ${name}: ${(f.closed.ackedPerSec / seed).toFixed(2)}x the seed design's closed-loop throughput`);
  }
}

main()
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  })
  .finally(() => void killAll());
