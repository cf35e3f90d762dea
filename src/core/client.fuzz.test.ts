/**
 * Property-based fuzzing of the frame decoder and command handlers, in process: whatever
 * a connection sends, nothing throws, no promise rejects unhandled, every command is
 * answered once (or the connection is closed), and the node keeps serving others.
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../../client/token.js';
import { MemoryBroker } from '../brokers/memory/broker_memory.js';
import { MemoryPresenceManager } from '../brokers/memory/presence_memory.js';
import { loadConfig } from '../config/load.js';
import { DEV_TOKEN_SECRET } from '../config/defaults.js';
import { JwtVerifier } from '../server/auth_jwt.js';
import { SqliteStore } from '../stores/sqlite/store_sqlite.js';
import { MemoryTransport } from '../../test/helpers/in_process.js';
import { Client } from './client.js';
import { Node } from './node.js';

/** Replies counted by command id. */
function replyCounts(transport: MemoryTransport): Map<number, number> {
  const counts = new Map<number, number>();
  for (const message of transport.messages()) {
    const id = message['id'];
    if (typeof id === 'number') counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

let node: Node;
let token: string;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  const { config } = loadConfig({ env: {}, overrides: { rate_limit: { connection: { burst: 1000, per_second: 1000 }, user: { burst: 1000, per_second: 1000 } } } });
  // The embedded chat namespace is persistent: its store is an in-memory SQLite database.
  const store = new SqliteStore({ path: ':memory:' });
  await store.migrate();
  node = new Node({
    config,
    broker: new MemoryBroker(),
    presence: new MemoryPresenceManager(),
    tokens: JwtVerifier.create(config.token),
    logger: pino({ level: 'silent' }),
    version: 'test',
    store,
  });
  await node.start();
  token = await mintToken(DEV_TOKEN_SECRET, { user: 'fuzzer' });
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await node.shutdown({ code: 3001, reason: 'shutdown' });
});

const channel = fc.oneof(
  fc.constantFrom('chat:fuzz', 'chat:other', 'user:fuzzer', 'user:victim', 'nowhere:x', '@fuzzer', '', 'chat:*', "chat:'; --"),
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.constant(null),
);
const request = fc.record(
  {
    channel,
    data: fc.jsonValue({ maxDepth: 4 }),
    token: fc.oneof(fc.string({ maxLength: 20 }), fc.constant('a.b.c')),
    recover: fc.oneof(fc.boolean(), fc.string({ maxLength: 3 })),
    offset: fc.oneof(fc.nat(), fc.integer({ min: -5, max: 5 }), fc.double(), fc.string({ maxLength: 5 })),
    epoch: fc.oneof(fc.string({ maxLength: 8 }), fc.integer()),
    limit: fc.oneof(fc.integer({ min: -2, max: 2000 }), fc.string({ maxLength: 3 })),
    reverse: fc.boolean(),
    since: fc.oneof(fc.record({ offset: fc.nat(), epoch: fc.string({ maxLength: 8 }) }), fc.jsonValue({ maxDepth: 2 })),
    method: fc.string({ maxLength: 10 }),
    flag: fc.integer({ min: -1, max: 8 }),
  },
  { requiredKeys: [] },
);
const method = fc.constantFrom('subscribe', 'unsubscribe', 'publish', 'presence', 'presence_stats', 'history', 'ping', 'send', 'rpc', 'refresh', 'sub_refresh', 'teleport');
const command = fc.tuple(method, fc.oneof(request, fc.jsonValue({ maxDepth: 3 })));

describe('client command handling under random input', () => {
  it('answers every command once or closes, never throws, never leaks a rejection', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 25 }), fc.boolean(), async (commands, oneFrame) => {
        const transport = new MemoryTransport();
        const client = new Client(node, transport, pino({ level: 'silent' }));
        client.handleFrame(JSON.stringify({ id: 1, connect: { token } }));
        const lines = commands.map(([m, req], i) => JSON.stringify({ id: i + 2, [m]: req }));
        if (oneFrame) client.handleFrame(lines.join('\n'));
        else for (const line of lines) client.handleFrame(line);
        await client.idle();
        const replies = replyCounts(transport);
        if (transport.closedWith === undefined) {
          for (let id = 1; id <= commands.length + 1; id++) {
            const method = commands[id - 2]?.[0];
            const count = replies.get(id) ?? 0;
            // A valid send gets no reply; a malformed one is answered with an error.
            if (method === 'send') expect(count, `command ${id} (send)`).toBeLessThanOrEqual(1);
            else expect(count, `command ${id} (${method ?? 'connect'})`).toBe(1);
          }
          client.disconnect({ code: 3000, reason: 'done' });
        } else {
          for (const n of replies.values()) expect(n).toBe(1);
        }
      }),
      { numRuns: 300 },
    );
    expect(unhandled).toEqual([]);
  });

  it('survives raw garbage frames: deep nesting, huge numbers, odd unicode', async () => {
    const frames = [
      '['.repeat(100_000),
      `{"id":2,"publish":{"channel":"chat:fuzz","data":${'['.repeat(5000)}${']'.repeat(5000)}}}`,
      '{"id":2,"subscribe":{"channel":"chat:fuzz","offset":1e400}}',
      '{"id":99999999999999999999,"ping":{}}',
      '{"id":2,"publish":{"channel":"chat:\\ud800","data":"\\udfff"}}',
      '\u0000\u0001\u0002',
    ];
    for (const frame of frames) {
      const transport = new MemoryTransport();
      const client = new Client(node, transport, pino({ level: 'silent' }));
      client.handleFrame(JSON.stringify({ id: 1, connect: { token } }));
      client.handleFrame(frame);
      await client.idle();
      expect(transport.closedWith !== undefined || replyCounts(transport).size >= 1).toBe(true);
      client.disconnect({ code: 3000, reason: 'done' });
    }
    expect(unhandled).toEqual([]);
  });

  it('answers 10,000 subscribes in one frame without stalling the node', async () => {
    const transport = new MemoryTransport();
    const client = new Client(node, transport, pino({ level: 'silent' }));
    client.handleFrame(JSON.stringify({ id: 1, connect: { token } }));
    const frame = Array.from({ length: 10_000 }, (_, i) => JSON.stringify({ id: i + 2, subscribe: { channel: `chat:flood-${i}` } })).join('\n');
    client.handleFrame(frame);
    await client.idle();
    const replies = transport.written.join('\n').split('\n').map((l) => JSON.parse(l) as { id?: number; error?: { code: number } });
    const errors = replies.filter((r) => r.error);
    expect(replies.filter((r) => r.id !== undefined && r.id > 1).length).toBe(10_000);
    expect(errors.length).toBe(10_000 - node.config.client.max_channels_per_connection);
    expect(errors.every((r) => r.error?.code === 106)).toBe(true);
    client.disconnect({ code: 3000, reason: 'done' });
  });
});
