/**
 * The snapshot cache of `latest` (seed 001's cache hit vs DB read): the time of one latest-value
 * read answered from a node's memory against one that reads the bus, on the in-memory bus and on
 * the machine's Redis (a private key prefix, deleted after). In process: what the node itself
 * costs, without HTTP.
 *
 *   node --import tsx bench/latest/run.ts [--reads 20000] [--bus memory|redis]
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import type { JsonText } from '../../src/core/json.js';
import { Node } from '../../src/core/node.js';
import { JwtVerifier } from '../../src/server/auth_jwt.js';
import { createBus } from '../../src/server/bus.js';

const { values } = parseArgs({ options: { reads: { type: 'string', default: '20000' }, bus: { type: 'string', default: 'memory' } } });
const READS = Number(values.reads);
const logger = pino({ level: 'silent' });

async function nodeOn(bus: string, cacheSize: number, prefix: string): Promise<Node> {
  const { config } = loadConfig({
    env: bus === 'redis' ? { REDIS_URL: 'redis://127.0.0.1:6379', RELAIS_BUS_PREFIX: prefix } : {},
    overrides: { latest_cache: { size: cacheSize }, namespaces: { live: { history_size: 1, history_ttl: '1h', force_recovery_mode: 'cache' } } },
  });
  const id = randomUUID();
  const made = await createBus(config, id, logger);
  const node = new Node({ id, config, broker: made.broker, presence: made.presence, tokens: JwtVerifier.create(config.token), logger, version: 'bench' });
  await node.start();
  return node;
}

async function measure(label: string, node: Node, channel: string, reads: number): Promise<void> {
  const resolved = node.channels.resolve(channel);
  await node.latest(resolved);
  const hits0 = node.stats.snapshotHits;
  const t0 = performance.now();
  for (let i = 0; i < reads; i++) await node.latest(resolved);
  const ms = performance.now() - t0;
  const hits = node.stats.snapshotHits - hits0;
  console.log(`${label.padEnd(34)} ${(ms * 1000 / reads).toFixed(1).padStart(8)} µs/read  ${Math.round(reads / (ms / 1000)).toLocaleString('en').padStart(9)} reads/s  hits ${hits}/${reads}`);
}

const prefix = `relais-bench-latest-${randomBytes(4).toString('hex')}`;
const bus = values.bus;
const cached = await nodeOn(bus, 10_000, prefix);
const uncached = await nodeOn(bus, 0, prefix);
const channel = `live:${randomBytes(4).toString('hex')}`;
await cached.publish(cached.channels.resolve(channel), JSON.stringify({ status: 'PROCESSING', progress: 50 }) as JsonText);
console.log(`latest-value reads, ${bus} bus, load ${(await import('node:os')).loadavg().map((l) => l.toFixed(1)).join(' ')}`);
await measure('from memory (snapshot cache hit)', cached, channel, READS);
await measure('from the bus (cache off: misses)', uncached, channel, Math.min(READS, bus === 'redis' ? 5000 : READS));
await cached.shutdown({ code: 3001, reason: 'shutdown' });
await uncached.shutdown({ code: 3001, reason: 'shutdown' });
if (bus === 'redis') {
  // Everything this run created on the shared Redis, and nothing else.
  const redis = new Redis('redis://127.0.0.1:6379');
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}.*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}
