/**
 * `relais serve --workers N`: one primary process and N workers sharing one port (node's
 * cluster module: the primary accepts connections and hands them to the workers in turn).
 * The workers are instances of one cluster, exactly as separate processes would be: over
 * the configured Redis or NATS, or, with none, over the bus the primary holds (PrimaryBus:
 * offsets, history, presence and fan-out in the primary's memory, reached through IPC).
 * A worker that dies is started again; SIGTERM or SIGINT stops them all gracefully.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { PrimaryBus } from '../brokers/ipc/bus_primary.js';
import { IpcBroker } from '../brokers/ipc/broker_ipc.js';
import { PrimaryClient } from '../brokers/ipc/ipc_client.js';
import { primaryLink, workerLink } from '../brokers/ipc/ipc_link.js';
import { IpcPresenceManager } from '../brokers/ipc/presence_ipc.js';
import { IpcOccupancy } from '../brokers/ipc/occupancy_ipc.js';
import type { RelaisConfig } from '../config/schema.js';
import type { Bus } from './bus.js';

/** A worker that exits this soon after starting, this many times in a row, stops the server. */
const CRASH_WINDOW_MS = 30_000;
const MAX_CRASHES = 5;
/** Time the workers get to stop gracefully before they are killed. */
const STOP_GRACE_MS = 15_000;

/** The number of workers `--workers` asks for: a count, or `auto` for every core. */
export function workerCount(value: string): number {
  if (value === 'auto') return availableParallelism();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new Error(`--workers: expected a number from 1 to 1024 or "auto", got "${value}"`);
  return n;
}

/** Whether this process is a worker of `relais serve --workers N`. */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/** Whether the configuration has a bus of its own (the workers then need none from the primary). */
function hasBus(config: Readonly<RelaisConfig>): boolean {
  return Boolean(config.redis_url ?? config.nats_url);
}

/**
 * Runs the primary: the built-in bus when no bus is configured, N workers kept running, and
 * a graceful stop on SIGTERM or SIGINT. Resolves when the workers have stopped.
 */
export async function runPrimary(config: Readonly<RelaisConfig>, workers: number, logger: Logger): Promise<void> {
  const bus = hasBus(config) ? undefined : new PrimaryBus(logger.child({ component: 'bus' }));
  await bus?.start();
  // Structured clones: publication objects cross without a JSON round trip of their own.
  cluster.setupPrimary({ serialization: 'advanced' });
  let stopping = false;
  const crashes: number[] = [];
  const fork = (): Worker => {
    const worker = cluster.fork();
    if (bus) bus.attach(workerLink(worker));
    const started = Date.now();
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      const now = Date.now();
      if (now - started < CRASH_WINDOW_MS) crashes.push(now);
      while (crashes.length > 0 && (crashes[0] ?? 0) < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length >= MAX_CRASHES) {
        logger.error({ code, signal }, `workers keep exiting (${MAX_CRASHES} in ${CRASH_WINDOW_MS / 1000} s): stopping`);
        void stopAll(1);
        return;
      }
      logger.warn({ code, signal, worker: worker.id }, 'worker exited: starting another');
      fork();
    });
    return worker;
  };
  const stopAll = async (exitCode: number): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const running = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    const exits = running.map((w) => new Promise<void>((resolve) => w.once('exit', () => resolve())));
    for (const w of running) w.process.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const w of running) if (!w.isDead()) w.process.kill('SIGKILL');
    }, STOP_GRACE_MS);
    await Promise.all(exits);
    clearTimeout(timer);
    await bus?.close();
    process.exit(exitCode);
  };
  for (let i = 0; i < workers; i++) fork();
  logger.info({ workers, bus: bus ? 'built into the primary process' : 'configured' }, `Relais primary running ${workers} workers`);
  process.on('SIGTERM', () => void stopAll(0));
  process.on('SIGINT', () => void stopAll(0));
  await new Promise<never>(() => undefined);
}

/** The bus of a worker when the configuration has none: the primary's, through IPC. */
export function primaryBus(config: Readonly<RelaisConfig>, logger: Logger): Bus | undefined {
  if (!cluster.isWorker || hasBus(config)) return undefined;
  const client = new PrimaryClient(primaryLink());
  return {
    broker: new IpcBroker(client, logger),
    presence: new IpcPresenceManager(client),
    createOccupancy: () => new IpcOccupancy(client),
    description: `worker ${cluster.worker?.id ?? '?'}: bus built into the primary process (relais serve --workers)`,
    label: 'the primary process',
  };
}
