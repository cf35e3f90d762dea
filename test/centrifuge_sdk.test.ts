/**
 * The real, unmodified `centrifuge` SDK against a real Relais process: connect, subscribe,
 * publish, history, presence, join/leave, recovery after a forced disconnect, private
 * messages, token refresh, subscription tokens and server-side subscriptions. Run for every
 * release of the compatibility matrix (the newest, the oldest 5.x, and 5.7.4, the last one
 * before the frame dispatch fix), for the newest's Protobuf build, and for the newest over
 * each fallback transport.
 */
import { randomBytes } from 'node:crypto';
import type { SubscribedContext } from 'centrifuge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busEnv, deletePrefix, sharedBusAvailable, SHARED_URL } from './helpers/buses.js';
import { sdkClient, sleep, waitFor, type SdkClient } from './helpers/clients.js';
import { createSchema, dropSchemas, newSchemaName, SHARED_POSTGRES_URL } from './helpers/postgres.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';
import { HTTP_STREAM, SSE_EMULATION, WEBSOCKET, type SdkConnection, type SdkTransport } from './helpers/sdk_transports.js';
import { NEWEST_PROTOBUF_SDK, NEWEST_SDK, SDK_5_0, SDK_MATRIX, type SdkRelease } from './helpers/sdk_versions.js';

interface SdkCase {
  readonly sdk: SdkRelease;
  readonly transport: SdkTransport;
  readonly label: string;
  readonly workers?: number;
  /** Two instances on the shared Redis and PostgreSQL: the stream on the first, emulation requests to the second. */
  readonly twoInstances?: boolean;
}

/**
 * Every SDK release over WebSocket, the newest's Protobuf build, the newest against a server
 * of 2 workers (relais serve --workers 2), and the newest over HTTP-streaming and SSE
 * emulation: on one instance, and with its commands sent to another instance than its stream.
 */
const CASES: SdkCase[] = [
  ...SDK_MATRIX.map((sdk) => ({ sdk, transport: WEBSOCKET, label: sdk.version })),
  { sdk: NEWEST_PROTOBUF_SDK, transport: WEBSOCKET, label: `${NEWEST_PROTOBUF_SDK.version} (Protobuf)` },
  { sdk: NEWEST_SDK, transport: WEBSOCKET, workers: 2, label: `${NEWEST_SDK.version} on 2 workers` },
  ...[HTTP_STREAM, SSE_EMULATION].flatMap((transport) => [
    { sdk: NEWEST_SDK, transport, label: `${NEWEST_SDK.version} over ${transport.name}` },
    { sdk: NEWEST_SDK, transport, twoInstances: true, label: `${NEWEST_SDK.version} ${transport.name}, 2 instances` },
  ]),
];

const SUITE_CONFIG = {
  namespaces: {
    small: { history_size: 10, history_ttl: '1h', force_recovery: true, allow_subscribe: 'authenticated', allow_publish: 'authenticated' },
    secret: { history_size: 10, history_ttl: '1h', allow_subscribe: 'token', allow_publish: 'server-only' },
    feed: { history_size: 1000, history_ttl: '1h', force_recovery: true, allow_subscribe: 'authenticated' },
  },
};

/**
 * The environment of two instances meeting on the shared Redis under `prefix`, with the same
 * secrets and one durable store (the chat across instances needs it): PostgreSQL schema `schema`.
 */
async function twoInstanceEnv(prefix: string, schema: string): Promise<Record<string, string>> {
  // Redis and PostgreSQL are services CI provides: missing, the cases fail rather than skip.
  if (!(await sharedBusAvailable('redis'))) throw new Error(`no Redis at ${SHARED_URL.redis}`);
  await createSchema(SHARED_POSTGRES_URL, schema);
  return {
    ...busEnv('redis', SHARED_URL.redis, prefix),
    DATABASE_URL: SHARED_POSTGRES_URL,
    RELAIS_DB_SCHEMA: schema,
    RELAIS_TOKEN_SECRET: `sdk-secret-${prefix}-0123456789`,
    RELAIS_API_KEY: `sdk-key-${prefix}`,
  };
}

describe.each(CASES)('centrifuge SDK $label against Relais', ({ sdk, workers, transport, twoInstances }) => {
  const { Centrifuge } = sdk;
  const decode = (data: unknown): unknown => sdk.decode(data);
  let relais: RelaisProcess;
  /** Where emulation requests go: the second instance, or `relais` itself. */
  let commands: RelaisProcess | undefined;
  const busPrefix = `relais-sdk-${randomBytes(4).toString('hex')}`;
  const schema = newSchemaName();
  const clients: SdkClient[] = [];

  function connection(): SdkConnection {
    return transport.connection(relais, commands ?? relais);
  }

  async function client(user: string, options: { token?: string } = {}): Promise<SdkClient> {
    const c = await sdkClient(relais, user, { ...options, sdk, connection: connection() });
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    const env = twoInstances ? await twoInstanceEnv(busPrefix, schema) : undefined;
    relais = await startRelais({ ...(workers ? { workers } : {}), ...(env ? { env } : {}), config: SUITE_CONFIG });
    if (env) commands = await startRelais({ env, config: SUITE_CONFIG });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await relais.stop();
    await commands?.stop();
    if (twoInstances) {
      await deletePrefix('redis', busPrefix);
      await dropSchemas(SHARED_POSTGRES_URL, [schema]);
    }
  });

  it('connects, subscribes, publishes, reads history and presence, sees join and leave', async () => {
    const alice = await client('alice');
    const bob = await client('bob');
    const joins: string[] = [];
    const leaves: string[] = [];
    const subA = alice.subscribe('chat:general', { joinLeave: true });
    subA.on('join', (ctx) => joins.push(ctx.info.user));
    subA.on('leave', (ctx) => leaves.push(ctx.info.user));
    await subA.ready(5000);
    const subB = bob.subscribe('chat:general');
    await subB.ready(5000);
    await waitFor(() => joins.includes('bob'), 5000, 'join of bob');

    await subA.publish(sdk.encode({ text: 'Hello everyone!' }));
    await waitFor(() => bob.pubs('chat:general').length === 1, 5000, 'bob receives');
    const got = bob.pubs('chat:general')[0];
    expect(decode(got?.data)).toEqual({ text: 'Hello everyone!' });
    expect(got?.info?.user).toBe('alice');
    expect(got?.offset).toBe(1);

    const history = await subB.history({ limit: 10 });
    expect(history.publications.map((p): unknown => decode(p.data))).toEqual([{ text: 'Hello everyone!' }]);
    expect(history.offset).toBe(1);
    expect(history.epoch).not.toBe('');

    const presence = await subA.presence();
    expect(Object.values(presence.clients).map((c) => c.user).sort()).toEqual(['alice', 'bob']);
    expect(await subA.presenceStats()).toEqual({ numClients: 2, numUsers: 2 });

    bob.close();
    await waitFor(() => leaves.includes('bob'), 5000, 'leave of bob');
    expect(await subA.presenceStats()).toEqual({ numClients: 1, numUsers: 1 });
  });

  it('recovers the 100 publications missed during a forced disconnect, once and in order', async () => {
    const token = await relais.token('carol');
    const centrifuge = new Centrifuge(connection().endpoint, { ...connection().options, token, minReconnectDelay: 1500, maxReconnectDelay: 1500 });
    const offsets: number[] = [];
    const values: number[] = [];
    const subscribed: SubscribedContext[] = [];
    const sub = centrifuge.newSubscription('chat:recovery');
    sub.on('publication', (ctx) => {
      offsets.push(ctx.offset ?? -1);
      values.push((decode(ctx.data) as { n: number }).n);
    });
    sub.on('subscribed', (ctx) => subscribed.push(ctx));
    sub.subscribe();
    centrifuge.connect();
    await sub.ready(5000);
    await relais.call('publish', { channel: 'chat:recovery', data: { n: 0 } });
    await waitFor(() => values.length === 1, 5000, 'first publication');

    let disconnected = false;
    centrifuge.once('connecting', () => (disconnected = true));
    await relais.call('disconnect', { user: 'carol', disconnect: { code: 3011, reason: 'force reconnect' } });
    await waitFor(() => disconnected, 5000, 'client disconnected');
    for (let n = 1; n <= 100; n++) await relais.call('publish', { channel: 'chat:recovery', data: { n } });

    await waitFor(() => values.length === 101, 10_000, 'all 101 publications');
    await sleep(200);
    centrifuge.disconnect();
    const again = subscribed[1];
    expect(again?.wasRecovering).toBe(true);
    expect(again?.recovered).toBe(true);
    // 5.0 does not report it yet (the field came in a later 5.x).
    expect(again?.hasRecoveredPublications).toBe(sdk === SDK_5_0 ? undefined : true);
    expect(values).toEqual(Array.from({ length: 101 }, (_, i) => i));
    expect(offsets).toEqual(Array.from({ length: 101 }, (_, i) => i + 1));
  });

  it('says recovered: false when history no longer covers the position, and replays nothing', async () => {
    const token = await relais.token('dave');
    const centrifuge = new Centrifuge(connection().endpoint, { ...connection().options, token, minReconnectDelay: 1500, maxReconnectDelay: 1500 });
    const values: number[] = [];
    const subscribed: SubscribedContext[] = [];
    const sub = centrifuge.newSubscription('small:room');
    sub.on('publication', (ctx) => values.push((decode(ctx.data) as { n: number }).n));
    sub.on('subscribed', (ctx) => subscribed.push(ctx));
    sub.subscribe();
    centrifuge.connect();
    await sub.ready(5000);
    let disconnected = false;
    centrifuge.once('connecting', () => (disconnected = true));
    await relais.call('disconnect', { user: 'dave', disconnect: { code: 3011, reason: '' } });
    await waitFor(() => disconnected, 5000, 'client disconnected');
    for (let n = 1; n <= 15; n++) await relais.call('publish', { channel: 'small:room', data: { n } });
    await waitFor(() => subscribed.length === 2, 10_000, 'resubscribed');
    const again = subscribed[1];
    expect(again?.wasRecovering).toBe(true);
    expect(again?.recovered).toBe(false);
    expect(again?.streamPosition?.offset).toBe(15);
    await relais.call('publish', { channel: 'small:room', data: { n: 16 } });
    await waitFor(() => values.length === 1, 5000, 'live publication after failed recovery');
    expect(values).toEqual([16]);
    centrifuge.disconnect();
  });

  it('joins the replay and the live stream with no gap and no duplicate while publications flow', async () => {
    const publishing = (async () => {
      for (let n = 1; n <= 600; n++) await relais.call('publish', { channel: 'feed:busy', data: { n } });
    })();
    const subscribers: { c: SdkClient; start: number }[] = [];
    for (let i = 0; i < 6; i++) {
      await sleep(40 + i * 30);
      const c = await client(`watcher-${i}`);
      const sub = c.subscribe('feed:busy');
      const ctx = await new Promise<SubscribedContext>((resolve) => sub.once('subscribed', resolve));
      subscribers.push({ c, start: ctx.streamPosition?.offset ?? 0 });
    }
    await publishing;
    for (const { c, start } of subscribers) {
      await waitFor(() => (c.pubs('feed:busy').at(-1)?.offset ?? start) === 600 || start === 600, 10_000, 'subscriber caught up');
      const offsets = c.pubs('feed:busy').map((p) => p.offset);
      // The subscribe reply's position counts the publications the reply itself carried (those
      // that arrived live while history was read): the stream may begin at or before it, but
      // never after, and runs to the end with no gap and no duplicate.
      const first = offsets[0] ?? start + 1;
      expect(first).toBeLessThanOrEqual(start + 1);
      expect(offsets).toEqual(Array.from({ length: 600 - first + 1 }, (_, i) => first + i));
    }
  });

  it('delivers a direct message to @user with the authenticated sender, and keeps personal channels private', async () => {
    const erin = await client('erin');
    const frank = await client('frank');
    const inbox = frank.subscribe('user:frank');
    await inbox.ready(5000);
    await erin.centrifuge.publish('@frank', sdk.encode({ text: 'psst', info: { user: 'mallory' } }));
    await waitFor(() => frank.pubs('user:frank').length === 1, 5000, 'direct message');
    const dm = frank.pubs('user:frank')[0];
    expect(dm?.info?.user).toBe('erin');
    expect(decode(dm?.data)).toEqual({ text: 'psst', info: { user: 'mallory' } });

    const spy = erin.centrifuge.newSubscription('user:frank');
    const error = new Promise<{ code: number }>((resolve) => spy.once('unsubscribed', (ctx) => resolve(ctx)));
    spy.subscribe();
    expect((await error).code).toBe(103);
  });

  it('answers RPC calls (the chat feature), and an unknown method with error 104', async () => {
    const kim = await client('kim');
    const created = await kim.centrifuge.rpc('chat.create', sdk.encode({ room: 'rpc-room', title: 'RPC' }));
    expect(decode(created.data)).toMatchObject({ room: { room: 'room:rpc-room', created_by: 'kim' }, created: true });
    await expect(kim.centrifuge.rpc('nowhere.method', sdk.encode({}))).rejects.toMatchObject({ code: 104 });
  });

  it('refreshes an expiring connection token through getToken and stays connected', async () => {
    let fetched = 0;
    const centrifuge = new Centrifuge(connection().endpoint, {
      ...connection().options,
      getToken: async () => {
        fetched++;
        return relais.token('gina', { ttlSeconds: 2 });
      },
    });
    let disconnects = 0;
    centrifuge.on('disconnected', () => disconnects++);
    centrifuge.on('connecting', () => disconnects++);
    centrifuge.connect();
    await centrifuge.ready(5000);
    disconnects = 0;
    await waitFor(() => fetched >= 3, 10_000, 'two refreshes');
    expect(disconnects).toBe(0);
    expect(centrifuge.state).toBe('connected');
    centrifuge.disconnect();
  });

  it('requires a subscription token where the namespace says so', async () => {
    const hank = await client('hank');
    const denied = hank.centrifuge.newSubscription('secret:plans');
    const unsubscribed = new Promise<{ code: number }>((resolve) => denied.once('unsubscribed', resolve));
    denied.subscribe();
    expect((await unsubscribed).code).toBe(103);
    hank.centrifuge.removeSubscription(denied);

    const allowed = hank.subscribe('secret:plans', { token: await relais.token('hank', { channel: 'secret:plans', info: { role: 'reader' } }) });
    await allowed.ready(5000);
    await relais.call('publish', { channel: 'secret:plans', data: 'x' });
    await waitFor(() => hank.pubs('secret:plans').length === 1, 5000, 'publication on token channel');

    const stolen = await relais.token('someone-else', { channel: 'secret:other' });
    const wrong = hank.centrifuge.newSubscription('secret:other', { token: stolen });
    const refused = new Promise<{ code: number }>((resolve) => wrong.once('unsubscribed', resolve));
    wrong.subscribe();
    expect((await refused).code).toBe(103);
  });

  it('subscribes a connection server-side from its token and from the API', async () => {
    const token = await relais.token('ivan', { channels: ['chat:announce'] });
    const centrifuge = new Centrifuge(connection().endpoint, { ...connection().options, token });
    const subscribed: string[] = [];
    const pubs: { channel: string; data: unknown }[] = [];
    centrifuge.on('subscribed', (ctx) => subscribed.push(ctx.channel));
    centrifuge.on('publication', (ctx) => pubs.push({ channel: ctx.channel, data: decode(ctx.data) }));
    centrifuge.connect();
    await centrifuge.ready(5000);
    await waitFor(() => subscribed.includes('chat:announce'), 5000, 'server-side subscription');
    await relais.call('publish', { channel: 'chat:announce', data: { v: 1 } });
    await waitFor(() => pubs.length === 1, 5000, 'server-side publication');

    await relais.call('subscribe', { user: 'ivan', channel: 'chat:later' });
    await waitFor(() => subscribed.includes('chat:later'), 5000, 'API subscribe');
    await relais.call('publish', { channel: 'chat:later', data: { v: 2 } });
    await waitFor(() => pubs.length === 2, 5000, 'publication after API subscribe');
    expect(pubs).toEqual([
      { channel: 'chat:announce', data: { v: 1 } },
      { channel: 'chat:later', data: { v: 2 } },
    ]);
    centrifuge.disconnect();
  });
});
