/**
 * The Redis publish path alone: RedisBroker publishing into a private `redis-server` (on a
 * spare port, so that its CPU is Relais's alone), one subscriber broker receiving. Reports
 * publications/s, the publisher process's CPU and Redis's CPU per publication, and Redis
 * commands per publication, for bursts of concurrent publishes (a busy channel: many in one
 * event-loop turn) and for one publish at a time.
 *
 *   node --import tsx bench/redis/publish_path.ts [--tree <repo root whose src/ to load>] [--count 20000]
 *
 * `--tree` runs another checkout's broker (an older revision, for a before/after).
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, portOpen, sleep } from '../net.js';

interface BrokerLike {
  start(handler: unknown): Promise<void>;
  subscribe(channels: readonly string[]): Promise<void>;
  publish(channel: string, data: string, options: Record<string, unknown>): Promise<unknown>;
  close(): Promise<void>;
}

const { values } = parseArgs({ options: { tree: { type: 'string' }, count: { type: 'string' }, burst: { type: 'string' } } });
const tree = resolve(values.tree ?? '.');
const count = Number(values.count ?? 20_000);
const burst = Number(values.burst ?? 100);

const { RedisBroker } = (await import(pathToFileURL(resolve(tree, 'src/brokers/redis/broker_redis.ts')).href)) as {
  RedisBroker: new (options: Record<string, unknown>) => BrokerLike;
};

const port = await freePort();
const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
try {
  while (!(await portOpen(port))) await sleep(50);
  const url = `redis://127.0.0.1:${port}`;
  const admin = new Redis(url);
  let received = 0;
  const handler = {
    handlePublication: () => {
      received++;
    },
    handleJoin: () => undefined,
    handleLeave: () => undefined,
    handleControl: () => undefined,
    handleResync: () => undefined,
  };
  const publisher = new RedisBroker({ url, prefix: 'bench', nodeId: 'pub' });
  const subscriber = new RedisBroker({ url, prefix: 'bench', nodeId: 'sub' });
  await publisher.start(handler);
  await subscriber.start(handler);
  await subscriber.subscribe(['bench:one']);
  const options = { historySize: 100, historyTtlMs: 600_000, historyMetaTtlMs: 3_600_000 };
  const data = JSON.stringify({ p: 'x'.repeat(80) });

  const redisCpu = async (): Promise<number> => {
    const info = await admin.info('cpu');
    const field = (name: string): number => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
    return field('used_cpu_user') + field('used_cpu_sys');
  };
  const commands = async (): Promise<number> => Number(/total_commands_processed:(\d+)/.exec(await admin.info('stats'))?.[1] ?? 0);

  const measure = async (label: string, publishAll: () => Promise<void>): Promise<void> => {
    received = 0;
    const redisBefore = await redisCpu();
    const commandsBefore = await commands();
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await publishAll();
    const publishMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    while (received < count) await sleep(5);
    const redisSeconds = (await redisCpu()) - redisBefore;
    const commandsUsed = (await commands()) - commandsBefore - 2; // less the two INFO of the measure
    process.stdout.write(
      `| ${label} | ${count} | ${Math.round((count * 1000) / publishMs).toLocaleString('en-US')} | ${((cpu.user + cpu.system) / count).toFixed(2)} | ${((redisSeconds * 1e6) / count).toFixed(2)} | ${(commandsUsed / count).toFixed(2)} |\n`,
    );
  };

  process.stdout.write(`tree ${tree}\n\n| mode | publications | publications/s | Node µs/pub (publisher + subscriber) | Redis µs/pub | Redis commands/pub |\n| --- | --- | --- | --- | --- | --- |\n`);
  await measure(`bursts of ${burst} concurrent`, async () => {
    for (let sent = 0; sent < count; sent += burst) {
      await Promise.all(Array.from({ length: Math.min(burst, count - sent) }, () => publisher.publish('bench:one', data, options)));
    }
  });
  await measure('one at a time', async () => {
    for (let sent = 0; sent < count; sent++) await publisher.publish('bench:one', data, options);
  });
  await publisher.close();
  await subscriber.close();
  admin.disconnect();
} finally {
  server.kill('SIGKILL');
}
