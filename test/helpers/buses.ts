/**
 * The message buses of multi-instance tests: the machine's shared Redis and NATS (never
 * stopped, never flushed: each run works under its own prefix and deletes it afterwards), and
 * private `redis-server` / `nats-server -js` child processes on spare ports for the tests
 * that stop or restart the bus.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, it } from 'vitest';
import { deleteNatsPrefix } from '../../src/brokers/nats/resources.js';
import { freePort, portOpen } from '../../bench/net.js';
import { withTimeout } from './relais.js';

export { freePort };

export type BusKind = 'redis' | 'nats';

export const SHARED_URL: Record<BusKind, string> = {
  redis: 'redis://127.0.0.1:6379',
  nats: 'nats://127.0.0.1:4222',
};

/** The environment that points a Relais instance at a bus. */
export function busEnv(kind: BusKind, url: string, prefix: string): Record<string, string> {
  return { [kind === 'redis' ? 'REDIS_URL' : 'NATS_URL']: url, RELAIS_BUS_PREFIX: prefix };
}

export function busUrl(kind: BusKind, port: number): string {
  return `${kind}://127.0.0.1:${port}`;
}

/** Whether the shared service answers (NATS: with JetStream), within a few seconds. */
export async function sharedBusAvailable(kind: BusKind): Promise<boolean> {
  if (kind === 'redis') {
    const redis = new Redis(SHARED_URL.redis, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await redis.connect();
      return (await redis.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      redis.disconnect();
    }
  }
  return natsWithJetStream(SHARED_URL.nats, 2000);
}

/**
 * Declares a suite that needs a bus. When `missing` says what is not there, the suite is a
 * failing test under CI=true (CI must provide the service) and a skipped suite elsewhere.
 */
export function describeWithBus(name: string, missing: string | undefined, body: () => void): void {
  if (missing === undefined) {
    describe(name, body);
  } else if (process.env['CI'] === 'true') {
    describe(name, () => {
      it('needs its bus', () => {
        throw new Error(`${missing}: CI must provide it`);
      });
    });
  } else {
    describe.skip(`${name}: skipped, ${missing}`, () => {
      it('runs against a real bus', () => undefined);
    });
  }
}

/** Whether NATS answers at `url` with JetStream enabled, each step within timeoutMs. */
export async function natsWithJetStream(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const nc = await connect({ servers: url, timeout: timeoutMs });
    try {
      await jetstreamManager(nc, { timeout: timeoutMs });
      return true;
    } finally {
      await nc.close();
    }
  } catch {
    return false;
  }
}

/** Whether the server binary runs here (`redis-server` or `nats-server`). */
export function serverBinaryAvailable(kind: BusKind): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn(kind === 'redis' ? 'redis-server' : 'nats-server', ['--version'], { stdio: 'ignore' });
    probe.once('error', () => resolve(false));
    probe.once('exit', (code) => resolve(code === 0));
  });
}

/** Deletes everything a prefix created on the shared service, and nothing else. */
export async function deletePrefix(kind: BusKind, prefix: string): Promise<number> {
  if (kind === 'nats') {
    await deleteNatsPrefix(SHARED_URL.nats, prefix);
    return 0;
  }
  const redis = new Redis(SHARED_URL.redis, { maxRetriesPerRequest: 1 });
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}.*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}


/**
 * A bus server of the test's own on a fixed port: stopped (as a crash: SIGKILL) and started
 * again on the same port, and the same store directory for NATS, so that its clients find
 * it again. Redis runs without persistence: a restart loses every key.
 */
export class PrivateBus {
  private child: ChildProcess | undefined;
  private readonly storeDir: string | undefined;

  private constructor(
    readonly kind: BusKind,
    readonly port: number,
  ) {
    if (kind === 'nats') this.storeDir = mkdtempSync(join(tmpdir(), 'relais-cluster-nats-'));
  }

  /** A private bus on a spare port, not started yet. */
  static async reserve(kind: BusKind): Promise<PrivateBus> {
    return new PrivateBus(kind, await freePort());
  }

  get url(): string {
    return busUrl(this.kind, this.port);
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(timeoutMs = 10_000): Promise<void> {
    if (this.running) return;
    const args =
      this.kind === 'redis'
        ? ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no']
        : ['-js', '-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir ?? ''];
    const child = spawn(this.kind === 'redis' ? 'redis-server' : 'nats-server', args, { stdio: 'ignore' });
    this.child = child;
    const exited = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`${this.kind} server on port ${this.port} exited with ${code}`)));
    });
    exited.catch(() => undefined);
    const deadline = Date.now() + timeoutMs;
    while (!(await Promise.race([this.ready(), exited]))) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${this.kind} server on port ${this.port} not ready within ${timeoutMs} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async ready(): Promise<boolean> {
    if (!(await portOpen(this.port))) return false;
    if (this.kind === 'redis') return true;
    return natsWithJetStream(this.url, 1000);
  }

  /** Stops the server gracefully (SIGTERM, SIGKILL after 10 s), keeping its store. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }

  /** Sends a signal to the running server: SIGSTOP freezes it, SIGCONT thaws it. */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child?.kill(signal);
  }

  /** Kills the server (SIGKILL, as a crash) and waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await withTimeout(exited, 10_000, `${this.kind} server on port ${this.port} did not die after SIGKILL`);
  }

  /** Kills the server and removes its store. */
  async dispose(): Promise<void> {
    await this.kill();
    if (this.storeDir) rmSync(this.storeDir, { recursive: true, force: true });
  }
}
