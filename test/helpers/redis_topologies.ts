/**
 * Redis deployments of the tests' own, on spare ports in a temporary folder, never touching
 * the shared Redis: a Cluster of 3 masters, each with one replica (`redis-server
 * --cluster-enabled yes` and `redis-cli --cluster create`), and a Sentinel group (one
 * master, one replica, three sentinels). Failover timings are short (node timeout 1 s) so
 * that a killed master is replaced within seconds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, portOpen } from '../../bench/net.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch {
      // Not yet.
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** One short command to one server, on a connection of its own. */
export async function redisCommand(port: number, ...args: (string | number)[]): Promise<unknown> {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const [command, ...rest] = args;
    return await redis.call(String(command), ...rest);
  } finally {
    redis.disconnect();
  }
}

class ServerProcess {
  private child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    private readonly args: readonly string[],
  ) {}

  /** Starts the server, with `extraArgs` after its own (a later `--replicaof` wins). */
  async start(extraArgs: readonly string[] = []): Promise<void> {
    const child = spawn('redis-server', [...this.args, ...extraArgs], { stdio: 'ignore' });
    this.child = child;
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    await until(`redis-server on port ${this.port}`, 10_000, async () => {
      if (exited) throw new Error('exited');
      return (await portOpen(this.port)) ? true : undefined;
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child?.kill(signal);
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL, as a crash; resolves once the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await gone;
  }
}

export interface FailoverOptions {
  /**
   * The master's replica is frozen (SIGSTOP) and cut off (CLIENT KILL TYPE replica) this
   * long before the master is killed, and thawed at once after: writes of that time exist on
   * the master alone and die with it.
   */
  readonly replicaFrozenMs?: number;
  readonly timeoutMs?: number;
}

async function freezeThenKill(master: ServerProcess | undefined, replica: ServerProcess | undefined, frozenMs: number): Promise<void> {
  if (frozenMs > 0 && master && replica) {
    replica.signal('SIGSTOP');
    // Bytes already sent sit in the frozen replica's socket buffer and would reach it once
    // thawed: the master also drops its replication link, so that later writes stay its own.
    await redisCommand(master.port, 'client', 'kill', 'type', 'replica');
    await sleep(frozenMs);
  }
  await master?.kill();
  if (frozenMs > 0) replica?.signal('SIGCONT');
}

function serverArgs(port: number, dir: string, extra: readonly string[]): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir, ...extra];
}

/** A Redis Cluster of `masters` masters with one replica each, started and formed. */
export class RedisClusterFixture {
  private constructor(
    private readonly dir: string,
    private readonly servers: ServerProcess[],
  ) {}

  static async start(masters = 3): Promise<RedisClusterFixture> {
    const dir = mkdtempSync(join(tmpdir(), 'relais-redis-cluster-'));
    const servers: ServerProcess[] = [];
    const fixture = new RedisClusterFixture(dir, servers);
    try {
      for (let i = 0; i < masters * 2; i++) {
        const port = await freePort();
        servers.push(
          new ServerProcess(
            port,
            serverArgs(port, dir, [
              '--cluster-enabled', 'yes',
              '--cluster-config-file', `nodes-${port}.conf`,
              '--cluster-node-timeout', '1000',
              // A replica takes over however long it was cut off from its master.
              '--cluster-replica-validity-factor', '0',
              '--cluster-require-full-coverage', 'no',
            ]),
          ),
        );
      }
      await Promise.all(servers.map((s) => s.start()));
      const create = spawn(
        'redis-cli',
        ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '1', '--cluster-yes'],
        { stdio: 'ignore' },
      );
      const code = await new Promise<number | null>((resolve) => create.once('exit', resolve));
      if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${code}`);
      await fixture.waitHealthy();
      return fixture;
    } catch (err) {
      await fixture.stop();
      throw err;
    }
  }

  /** `redis+cluster://` with every node as a seed. */
  get url(): string {
    return `redis+cluster://${this.servers.map((s) => `127.0.0.1:${s.port}`).join(',')}`;
  }

  /** Every live node answers cluster_state:ok, and every live replica is in sync with its master. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    await until('cluster state ok on every node, replicas in sync', timeoutMs, async () => {
      for (const server of this.servers.filter((s) => s.running)) {
        const info = String(await redisCommand(server.port, 'cluster', 'info'));
        if (!info.includes('cluster_state:ok')) return undefined;
        const replication = String(await redisCommand(server.port, 'info', 'replication'));
        if (replication.includes('role:slave') && !replication.includes('master_link_status:up')) return undefined;
      }
      return true;
    });
  }

  /** The port of the master serving `key`'s slot. */
  async masterOf(key: string): Promise<number> {
    return (await this.slotServers(key))[0];
  }

  /** [master port, replica ports...] of `key`'s slot. */
  private async slotServers(key: string): Promise<[number, ...number[]]> {
    const live = this.servers.find((s) => s.running);
    if (!live) throw new Error('no live node');
    const slot = Number(await redisCommand(live.port, 'cluster', 'keyslot', key));
    const ranges = (await redisCommand(live.port, 'cluster', 'slots')) as [number, number, [string, number, ...unknown[]], ...[string, number, ...unknown[]][]][];
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`slot ${slot} has no master`);
    const [, , master, ...replicas] = range;
    return [master[1], ...replicas.map((r) => r[1])];
  }

  /** Kills (SIGKILL) the node on `port`; its replica takes over after the node timeout. */
  async kill(port: number): Promise<void> {
    await this.servers.find((s) => s.port === port)?.kill();
  }

  /**
   * Kills the master serving `key`, waits until its replica serves the slot, then starts the
   * killed node again: it rejoins (its nodes file is kept) as the new master's replica.
   */
  async failOverMasterOf(key: string, options: FailoverOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 20_000;
    const [before, replicaPort] = await this.slotServers(key);
    const server = this.servers.find((s) => s.port === before);
    const replica = this.servers.find((s) => s.port === replicaPort);
    await freezeThenKill(server, replica, options.replicaFrozenMs ?? 0);
    await until('a replica promoted', timeoutMs, async () => ((await this.masterOf(key)) !== before ? true : undefined));
    await server?.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** One master, one replica and three sentinels (quorum 2) watching master group `mymaster`. */
export class RedisSentinelFixture {
  readonly masterName = 'mymaster';

  private constructor(
    private readonly dir: string,
    private readonly redisServers: ServerProcess[],
    private readonly sentinels: ServerProcess[],
  ) {}

  static async start(): Promise<RedisSentinelFixture> {
    const dir = mkdtempSync(join(tmpdir(), 'relais-redis-sentinel-'));
    const redisServers: ServerProcess[] = [];
    const sentinels: ServerProcess[] = [];
    const fixture = new RedisSentinelFixture(dir, redisServers, sentinels);
    try {
      const masterPort = await freePort();
      const replicaPort = await freePort();
      redisServers.push(new ServerProcess(masterPort, serverArgs(masterPort, dir, [])));
      redisServers.push(new ServerProcess(replicaPort, serverArgs(replicaPort, dir, ['--replicaof', '127.0.0.1', String(masterPort)])));
      await Promise.all(redisServers.map((s) => s.start()));
      await until('replica in sync', 10_000, async () =>
        String(await redisCommand(replicaPort, 'info', 'replication')).includes('master_link_status:up') ? true : undefined,
      );
      for (let i = 0; i < 3; i++) {
        const port = await freePort();
        const conf = join(dir, `sentinel-${port}.conf`);
        writeFileSync(
          conf,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            `dir ${dir}`,
            `sentinel monitor ${fixture.masterName} 127.0.0.1 ${masterPort} 2`,
            `sentinel down-after-milliseconds ${fixture.masterName} 1000`,
            `sentinel failover-timeout ${fixture.masterName} 5000`,
            `sentinel parallel-syncs ${fixture.masterName} 1`,
            '',
          ].join('\n'),
        );
        sentinels.push(new ServerProcess(port, [conf, '--sentinel']));
      }
      await Promise.all(sentinels.map((s) => s.start()));
      // Every sentinel knows the replica and the other sentinels before a failover is asked.
      await until('sentinels see the replica and each other', 15_000, async () => {
        for (const s of sentinels) {
          const master = (await redisCommand(s.port, 'sentinel', 'master', fixture.masterName)) as string[];
          const field = (name: string): number => Number(master[master.indexOf(name) + 1]);
          if (field('num-slaves') < 1 || field('num-other-sentinels') < 2) return undefined;
        }
        return true;
      });
      return fixture;
    } catch (err) {
      await fixture.stop();
      throw err;
    }
  }

  get url(): string {
    return `redis+sentinel://${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${this.masterName}`;
  }

  /** The port of the current master, as the sentinels tell it. */
  async masterPort(): Promise<number> {
    const sentinel = this.sentinels[0];
    if (!sentinel) throw new Error('no sentinel');
    const [, port] = (await redisCommand(sentinel.port, 'sentinel', 'get-master-addr-by-name', this.masterName)) as [string, string];
    return Number(port);
  }

  /** Asks for a failover (SENTINEL FAILOVER) and waits until the other server is the master. */
  async failover(timeoutMs = 15_000): Promise<number> {
    const before = await this.masterPort();
    const sentinel = this.sentinels[0];
    if (!sentinel) throw new Error('no sentinel');
    await redisCommand(sentinel.port, 'sentinel', 'failover', this.masterName);
    return this.waitNewMaster(before, timeoutMs);
  }

  /**
   * Kills (SIGKILL) the current master, waits until the sentinels promoted the replica, then
   * starts the killed server again (empty) as the new master's replica, as an operator would.
   * Resolves with the promoted one's port.
   */
  async killMaster(options: FailoverOptions = {}): Promise<number> {
    const timeoutMs = options.timeoutMs ?? 20_000;
    const before = await this.masterPort();
    const server = this.redisServers.find((s) => s.port === before);
    const replica = this.redisServers.find((s) => s.port !== before);
    await freezeThenKill(server, replica, options.replicaFrozenMs ?? 0);
    const promoted = await this.waitNewMaster(before, timeoutMs);
    await server?.start(['--replicaof', '127.0.0.1', String(promoted)]);
    return promoted;
  }

  private async waitNewMaster(before: number, timeoutMs: number): Promise<number> {
    return until('a new master', timeoutMs, async () => {
      const now = await this.masterPort();
      if (now === before) return undefined;
      const role = (await redisCommand(now, 'role')) as unknown[];
      return role[0] === 'master' ? now : undefined;
    });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sentinels, ...this.redisServers].map((s) => s.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
