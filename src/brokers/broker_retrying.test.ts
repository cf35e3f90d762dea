import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { RelaisError } from '../core/errors.js';
import type { Broker, BrokerEventHandler } from './broker.js';
import { describeBrokerContract, RecordingHandler } from './broker.contract.js';
import { RetryingBroker } from './broker_retrying.js';
import { MemoryBroker } from './memory/broker_memory.js';
import { MemoryPresenceManager } from './memory/presence_memory.js';
import { RedisBroker } from './redis/broker_redis.js';
import { RedisPresenceManager } from './redis/presence_redis.js';
import { deletePrefix, SHARED_URL, sharedBusAvailable } from '../../test/helpers/buses.js';

/** A memory broker whose start fails while `down`, recording the interest it is given. */
class FlakyBroker extends MemoryBroker {
  readonly channels: string[] = [];
  readonly patterns: string[] = [];

  constructor(
    private readonly down: () => boolean,
    private readonly refusePatterns = false,
  ) {
    super();
  }

  override start(handler: BrokerEventHandler): Promise<void> {
    if (this.down()) return Promise.reject(new RelaisError('BROKER_UNAVAILABLE', 'down'));
    return super.start(handler);
  }

  override subscribe(channels: readonly string[]): Promise<void> {
    this.channels.push(...channels);
    return Promise.resolve();
  }

  override subscribePattern(pattern: string): Promise<void> {
    if (this.refusePatterns) return Promise.reject(new RelaisError('NOT_AVAILABLE', 'no patterns here'));
    this.patterns.push(pattern);
    return Promise.resolve();
  }
}

async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function retrying(options: { refusePatterns?: boolean } = {}) {
  let down = true;
  const created: FlakyBroker[] = [];
  const broker = new RetryingBroker({
    kind: 'memory',
    retryMs: 10,
    create: () => {
      const b = new FlakyBroker(() => down, options.refusePatterns);
      created.push(b);
      return b;
    },
  });
  return { broker, created, up: () => (down = false) };
}

describe('RetryingBroker', () => {
  it('remembers patterns subscribed while the bus is down and subscribes them once it is up', async () => {
    const { broker, created, up } = retrying();
    const events = new RecordingHandler();
    await broker.start(events);
    await expect(broker.subscribePattern('chat:*')).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });
    await expect(broker.subscribePattern('news:*')).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });
    await broker.unsubscribePattern('news:*');
    await expect(broker.subscribe(['chat:a'])).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });
    up();
    await until(() => events.resyncs === 1);
    const inner = created.at(-1);
    expect(inner?.patterns).toEqual(['chat:*']);
    expect(inner?.channels).toEqual(['chat:a']);
    await broker.subscribePattern('room:*');
    expect(inner?.patterns).toEqual(['chat:*', 'room:*']);
    await broker.close();
  });

  it('drops a pattern the bus refuses for good instead of failing every start', async () => {
    const { broker, created, up } = retrying({ refusePatterns: true });
    const events = new RecordingHandler();
    await broker.start(events);
    await expect(broker.subscribePattern('chat:*')).rejects.toMatchObject({ code: 'BROKER_UNAVAILABLE' });
    up();
    await until(() => events.resyncs === 1);
    await expect(broker.subscribePattern('chat:*')).rejects.toMatchObject({ code: 'NOT_AVAILABLE' });
    expect(created.at(-1)?.patterns).toEqual([]);
    await broker.close();
  });
});

/** The retrying wrapper as the server builds it when `bus_start` is not `fail`. */
function retryingAround(kind: Broker['kind'], create: () => Broker): RetryingBroker {
  return new RetryingBroker({ kind, create, retryMs: 50 });
}

describeBrokerContract('retrying (memory)', {
  distributed: false,
  node: () => Promise.resolve({ broker: retryingAround('memory', () => new MemoryBroker()), presence: new MemoryPresenceManager() }),
  reset: () => undefined,
});

const redisUp = await sharedBusAvailable('redis');
if (!redisUp && process.env.CI === 'true') {
  describe('Broker contract: retrying (redis)', () => {
    it(`needs Redis at ${SHARED_URL.redis} (CI=true: an unreachable Redis is a failure, not a skip)`, () => {
      throw new Error(`Redis is not reachable at ${SHARED_URL.redis}`);
    });
  });
} else if (!redisUp) {
  describe.skip(`Broker contract: retrying (redis): skipped, no Redis at ${SHARED_URL.redis}`, () => {
    it('runs against a real Redis', () => undefined);
  });
} else {
  const url = SHARED_URL.redis;
  const prefixes: string[] = [];
  const newPrefix = (): string => {
    const prefix = `relais-test-${randomBytes(6).toString('hex')}`;
    prefixes.push(prefix);
    return prefix;
  };
  let prefix = newPrefix();
  let nodes = 0;
  describeBrokerContract('retrying (redis)', {
    distributed: true,
    node: () => {
      const nodeId = `node-${++nodes}`;
      const nodePrefix = prefix;
      return Promise.resolve({
        broker: retryingAround('redis', () => new RedisBroker({ url, prefix: nodePrefix, nodeId })),
        presence: new RedisPresenceManager({ url, prefix: nodePrefix, nodeId }),
      });
    },
    reset: () => {
      prefix = newPrefix();
    },
  });
  afterAll(async () => {
    for (const p of prefixes) await deletePrefix('redis', p);
  });
}
