/** An in-process node and clients over a memory transport, for tests of the core without sockets. */
import { pino } from 'pino';
import { mintToken } from '../../client/token.js';
import type { Broker } from '../../src/brokers/broker.js';
import { MemoryPresenceManager } from '../../src/brokers/memory/presence_memory.js';
import { DEV_TOKEN_SECRET } from '../../src/config/defaults.js';
import { loadConfig } from '../../src/config/load.js';
import type { RelaisConfigInput } from '../../src/config/schema.js';
import { Client, type ClientTransport } from '../../src/core/client.js';
import { publicationEncoders, type PreparedPush } from '../../src/core/push_encoders.js';
import type { EncodedMessage } from '../../src/protocol/codec.js';
import { jsonCodec } from '../../src/protocol/json_codec.js';
import type { Disconnect } from '../../src/core/errors.js';
import { Node } from '../../src/core/node.js';
import { JwtVerifier } from '../../src/server/auth_jwt.js';
import { SqliteStore } from '../../src/stores/sqlite/store_sqlite.js';

const ENCODERS = publicationEncoders(jsonCodec, (message) => ({ message }));

/** A client transport that keeps what it is given, speaking the JSON protocol. */
export class MemoryTransport implements ClientTransport {
  readonly name = 'websocket';
  readonly codec = jsonCodec;
  readonly publicationEncoders = ENCODERS;
  readonly written: string[] = [];
  closedWith: Disconnect | undefined;

  write(message: EncodedMessage | PreparedPush): void {
    const encoded = typeof message === 'string' || message instanceof Uint8Array ? message : message.message;
    this.written.push(typeof encoded === 'string' ? encoded : Buffer.from(encoded).toString('base64'));
  }

  close(disconnect: Disconnect): void {
    this.closedWith = disconnect;
  }

  /** Every message written, parsed. */
  messages(): Record<string, unknown>[] {
    return this.written.flatMap((frame) => frame.split('\n')).map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

/**
 * A started node on the embedded defaults and `overrides`, with an in-memory SQLite store
 * (the embedded chat namespace is persistent) and a `feed` namespace whose history is on the
 * bus, for the tests of bus history.
 */
export async function inProcessNode(broker: Broker, overrides: RelaisConfigInput = {}): Promise<Node> {
  const { config } = loadConfig({
    env: {},
    overrides: {
      ...overrides,
      namespaces: {
        feed: { history_size: 100, history_ttl: '24h', force_recovery: true, allow_publish: 'authenticated', allow_history: true },
        ...overrides.namespaces,
      },
    },
  });
  const store = new SqliteStore({ path: ':memory:' });
  await store.migrate();
  const node = new Node({
    config,
    broker,
    presence: new MemoryPresenceManager(),
    tokens: JwtVerifier.create(config.token),
    logger: pino({ level: 'silent' }),
    version: 'test',
    store,
  });
  await node.start();
  return node;
}

/** A connected client of `node` for `user`. */
export async function inProcessClient(node: Node, user: string): Promise<{ client: Client; transport: MemoryTransport }> {
  const transport = new MemoryTransport();
  const client = new Client(node, transport, pino({ level: 'silent' }));
  client.handleFrame(JSON.stringify({ id: 1, connect: { token: await mintToken(DEV_TOKEN_SECRET, { user }) } }));
  await client.idle();
  return { client, transport };
}
