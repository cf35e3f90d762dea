/**
 * The HTTP server API against a real Relais process: every method with its Centrifugo-shaped
 * result, effects checked on real `centrifuge` SDK clients, and the documented errors.
 */
import type { MessageContext, PublicationContext, ServerSubscribedContext, ServerUnsubscribedContext } from 'centrifuge';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sdkClient, sleep, waitFor, type SdkClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

let relais: RelaisProcess;
const clients: SdkClient[] = [];
const MAX_PUBLICATION_BYTES = 1024;

beforeAll(async () => {
  relais = await startRelais({
    config: {
      client: { max_publication_bytes: MAX_PUBLICATION_BYTES },
      namespaces: {
        // No history, no presence.
        plain: { allow_subscribe: 'authenticated' },
        // History in the bus only (chat is persistent: its history is in the store).
        feed: { history_size: 100, history_ttl: '1h', allow_history: true },
      },
    },
  });
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  await relais.stop();
});

async function client(user: string, info?: unknown): Promise<SdkClient> {
  const token = await relais.token(user, info === undefined ? {} : { info });
  const c = await sdkClient(relais, user, { token });
  clients.push(c);
  return c;
}

async function subscribed(c: SdkClient, channel: string): Promise<void> {
  await c.subscribe(channel).ready(5000);
}

interface Position {
  readonly offset: number;
  readonly epoch: string;
}

interface HistoryResult {
  readonly publications: { readonly data: unknown; readonly offset?: number; readonly info?: unknown; readonly tags?: unknown }[];
  readonly offset: number;
  readonly epoch: string;
}

/** A raw POST to the API: the body as given, any headers. */
async function post(method: string, body: string | undefined, headers: Record<string, string> = { 'x-api-key': relais.apiKey }): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${relais.httpUrl}/api/${method}`, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
  return { status: response.status, body: await response.json() };
}

function numbers(pubs: readonly { readonly data: unknown }[]): number[] {
  return pubs.map((p) => (p.data as { n: number }).n);
}

describe('server API', () => {
  it('publish returns the position and reaches SDK subscribers; namespaces without history return {}', async () => {
    const reader = await client('pub-reader');
    await subscribed(reader, 'chat:p1');
    const first = await relais.api('publish', { channel: 'chat:p1', data: { n: 1 }, tags: { kind: 'test' } });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ result: { offset: 1, epoch: expect.any(String) as unknown } });
    const second = await relais.call<Position>('publish', { channel: 'chat:p1', data: { n: 2 } });
    expect(second).toEqual({ offset: 2, epoch: (first.body.result as Position).epoch });
    await waitFor(() => reader.pubs('chat:p1').length === 2, 5000, 'two publications');
    const got = reader.pubs('chat:p1');
    expect(got.map((p): unknown[] => [p.data as unknown, p.offset, p.tags])).toEqual([
      [{ n: 1 }, 1, { kind: 'test' }],
      [{ n: 2 }, 2, undefined],
    ]);
    // The API has no connection: no publisher info.
    expect(got[0]?.info).toBeUndefined();

    expect(await relais.call('publish', { channel: 'plain:p1', data: 'x' })).toEqual({});
  });

  it('publish with the same idempotency_key twice delivers once and returns the same offset', async () => {
    const reader = await client('idem-reader');
    await subscribed(reader, 'chat:idem');
    const params = { channel: 'chat:idem', data: { n: 1 }, idempotency_key: 'order-42' };
    const first = await relais.call<Position>('publish', params);
    const retry = await relais.call<Position>('publish', params);
    expect(retry).toEqual(first);
    const other = await relais.call<Position>('publish', { ...params, data: { n: 2 }, idempotency_key: 'order-43' });
    expect(other.offset).toBe(first.offset + 1);
    await waitFor(() => reader.pubs('chat:idem').length >= 2, 5000, 'publications');
    await sleep(300);
    expect(numbers(reader.pubs('chat:idem'))).toEqual([1, 2]);
    const history = await relais.call<HistoryResult>('history', { channel: 'chat:idem', limit: 10 });
    expect(numbers(history.publications)).toEqual([1, 2]);
  });

  it('broadcast publishes to every channel, with each failure in place', async () => {
    const reader = await client('bc-reader');
    const channels = ['chat:bc1', 'chat:bc2', 'chat:bc3'];
    for (const channel of channels) await subscribed(reader, channel);
    const result = await relais.call<{ responses: unknown[] }>('broadcast', { channels, data: { n: 7 } });
    expect(result.responses).toEqual(channels.map(() => ({ result: { offset: 1, epoch: expect.any(String) as unknown } })));
    await waitFor(() => channels.every((c) => reader.pubs(c).length === 1), 5000, 'one publication per channel');
    for (const channel of channels) expect(reader.pubs(channel)[0]?.data).toEqual({ n: 7 });

    const mixed = await relais.call<{ responses: unknown[] }>('broadcast', { channels: ['chat:bc1', 'nope:x', 'chat:bc 2', 'chat:bc3'], data: { n: 8 } });
    expect(mixed.responses).toEqual([
      { result: { offset: 2, epoch: expect.any(String) as unknown } },
      { error: { code: 102, message: expect.stringContaining('nope') as unknown } },
      { error: { code: 107, message: expect.any(String) as unknown } },
      { result: { offset: 2, epoch: expect.any(String) as unknown } },
    ]);
  });

  it('history pages with limit, since and reverse', async () => {
    let epoch = '';
    for (let n = 1; n <= 10; n++) epoch = (await relais.call<Position>('publish', { channel: 'chat:hist', data: { n } })).epoch;
    const history = (params: Record<string, unknown>): Promise<HistoryResult> => relais.call<HistoryResult>('history', { channel: 'chat:hist', ...params });

    expect(await history({})).toEqual({ publications: [], offset: 10, epoch });
    expect(await history({ limit: 0 })).toEqual({ publications: [], offset: 10, epoch });
    const three = await history({ limit: 3 });
    expect(three.publications).toEqual([
      { data: { n: 1 }, offset: 1 },
      { data: { n: 2 }, offset: 2 },
      { data: { n: 3 }, offset: 3 },
    ]);
    expect(numbers((await history({ limit: -1 })).publications)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(numbers((await history({ limit: 10, since: { offset: 7, epoch } })).publications)).toEqual([8, 9, 10]);
    expect(numbers((await history({ limit: 2, since: { offset: 3, epoch } })).publications)).toEqual([4, 5]);
    expect(numbers((await history({ limit: 3, reverse: true })).publications)).toEqual([10, 9, 8]);
    expect(numbers((await history({ limit: 2, since: { offset: 5, epoch }, reverse: true })).publications)).toEqual([4, 3]);
    expect(await history({ limit: 10, since: { offset: 2, epoch: 'another-epoch' } })).toEqual({ publications: [], offset: 10, epoch });
  });

  it('history_remove drops the publications and keeps the position', async () => {
    for (let n = 1; n <= 3; n++) await relais.call('publish', { channel: 'feed:hrm', data: { n } });
    const before = await relais.call<HistoryResult>('history', { channel: 'feed:hrm', limit: 10 });
    expect(numbers(before.publications)).toEqual([1, 2, 3]);
    expect(await relais.call('history_remove', { channel: 'feed:hrm' })).toEqual({});
    expect(await relais.call('history', { channel: 'feed:hrm', limit: 10 })).toEqual({ publications: [], offset: 3, epoch: before.epoch });
    expect(await relais.call('publish', { channel: 'feed:hrm', data: { n: 4 } })).toEqual({ offset: 4, epoch: before.epoch });
  });

  it('history_remove clears a persistent channel: its store starts a new epoch, offsets from 1', async () => {
    for (let n = 1; n <= 3; n++) await relais.call('publish', { channel: 'chat:hrm', data: { n } });
    const before = await relais.call<HistoryResult>('history', { channel: 'chat:hrm', limit: 10 });
    expect(numbers(before.publications)).toEqual([1, 2, 3]);
    expect(await relais.call('history_remove', { channel: 'chat:hrm' })).toEqual({});
    const after = await relais.call<HistoryResult>('history', { channel: 'chat:hrm', limit: 10 });
    expect(after.publications).toEqual([]);
    expect(after.epoch).not.toBe(before.epoch);
    expect(await relais.call('publish', { channel: 'chat:hrm', data: { n: 4 } })).toEqual({ offset: 1, epoch: after.epoch });
  });

  it('channels lists the active channels matching a glob, with subscriber counts', async () => {
    const a = await client('cnt-a');
    const b = await client('cnt-b');
    await subscribed(a, 'chat:cnt-x');
    await subscribed(b, 'chat:cnt-x');
    await subscribed(b, 'chat:cnt-y');
    await subscribed(b, 'plain:cnt-z');
    expect(await relais.call('channels', { pattern: 'chat:cnt-*' })).toEqual({
      channels: { 'chat:cnt-x': { num_clients: 2 }, 'chat:cnt-y': { num_clients: 1 } },
    });
    expect(await relais.call('channels', { pattern: 'chat:cnt-?' })).toEqual({
      channels: { 'chat:cnt-x': { num_clients: 2 }, 'chat:cnt-y': { num_clients: 1 } },
    });
    const all = await relais.call<{ channels: Record<string, unknown> }>('channels', {});
    expect(all.channels['plain:cnt-z']).toEqual({ num_clients: 1 });
    expect(await relais.call('channels', { pattern: 'nothing:*' })).toEqual({ channels: {} });

    b.close();
    await expect
      .poll(async () => relais.call('channels', { pattern: 'chat:cnt-*' }), { timeout: 5000, interval: 50 })
      .toEqual({ channels: { 'chat:cnt-x': { num_clients: 1 } } });
  });

  it('info lists this node with its counts', async () => {
    await client('info-user');
    const info = await relais.call<{ nodes: Record<string, unknown>[] }>('info', {});
    expect(info.nodes).toHaveLength(1);
    const node = info.nodes[0] ?? {};
    expect(Object.keys(node).sort()).toEqual(['name', 'num_channels', 'num_clients', 'num_subs', 'num_users', 'uid', 'uptime', 'version']);
    expect(node['uid']).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof node['name']).toBe('string');
    expect(typeof node['version']).toBe('string');
    expect(node['num_clients']).toBeGreaterThanOrEqual(1);
    expect(node['num_users']).toBeGreaterThanOrEqual(1);
    expect(node['uptime']).toBeGreaterThanOrEqual(0);
    // Empty body: no parameters.
    expect((await post('info', undefined)).status).toBe(200);
  });

  it('presence and presence_stats list the SDK clients subscribed', async () => {
    const alice = await client('pr-alice', { device: 'phone' });
    const bob = await client('pr-bob');
    await subscribed(alice, 'chat:pres');
    await subscribed(bob, 'chat:pres');
    const presence = await relais.call<{ presence: Record<string, { user: string; client: string; conn_info?: unknown }> }>('presence', { channel: 'chat:pres' });
    const entries = Object.entries(presence.presence);
    expect(entries.map(([, e]) => e.user).sort()).toEqual(['pr-alice', 'pr-bob']);
    for (const [id, entry] of entries) expect(entry.client).toBe(id);
    expect(entries.find(([, e]) => e.user === 'pr-alice')?.[1].conn_info).toEqual({ device: 'phone' });
    expect(await relais.call('presence_stats', { channel: 'chat:pres' })).toEqual({ num_clients: 2, num_users: 2 });

    const aliceAgain = await client('pr-alice');
    await subscribed(aliceAgain, 'chat:pres');
    expect(await relais.call('presence_stats', { channel: 'chat:pres' })).toEqual({ num_clients: 3, num_users: 2 });
    bob.close();
    await expect
      .poll(async () => relais.call('presence_stats', { channel: 'chat:pres' }), { timeout: 5000, interval: 50 })
      .toEqual({ num_clients: 2, num_users: 1 });
  });

  it('subscribe and unsubscribe reach the connections of a user', async () => {
    const c = await client('srv-user');
    const other = await client('srv-other');
    const subs: string[] = [];
    const unsubs: string[] = [];
    const pubs: PublicationContext[] = [];
    c.centrifuge.on('subscribed', (ctx: ServerSubscribedContext) => subs.push(ctx.channel));
    c.centrifuge.on('unsubscribed', (ctx: ServerUnsubscribedContext) => unsubs.push(ctx.channel));
    c.centrifuge.on('publication', (ctx) => pubs.push(ctx));
    const otherSubs: string[] = [];
    other.centrifuge.on('subscribed', (ctx: ServerSubscribedContext) => otherSubs.push(ctx.channel));

    expect(await relais.call('subscribe', { user: 'srv-user', channel: 'chat:srv' })).toEqual({});
    await waitFor(() => subs.includes('chat:srv'), 5000, 'server-side subscription');
    await relais.call('publish', { channel: 'chat:srv', data: { n: 1 } });
    await waitFor(() => pubs.length === 1, 5000, 'publication on the server-side subscription');
    expect(pubs[0]?.channel).toBe('chat:srv');

    expect(await relais.call('unsubscribe', { user: 'srv-user', channel: 'chat:srv' })).toEqual({});
    await waitFor(() => unsubs.includes('chat:srv'), 5000, 'server-side unsubscription');
    await relais.call('publish', { channel: 'chat:srv', data: { n: 2 } });
    await sleep(300);
    expect(pubs).toHaveLength(1);
    expect(otherSubs).toEqual([]);
  });

  it('disconnect ends one connection, all but a whitelist, or all of a user, with the code given', async () => {
    const tab1 = await client('dis-user', { tab: 1 });
    const tab2 = await client('dis-user', { tab: 2 });
    const bystander = await client('dis-other');
    await subscribed(tab1, 'chat:dis');
    await subscribed(tab2, 'chat:dis');
    const presence = await relais.call<{ presence: Record<string, { conn_info?: { tab?: number } }> }>('presence', { channel: 'chat:dis' });
    const idOf = (tab: number): string => Object.entries(presence.presence).find(([, e]) => e.conn_info?.tab === tab)?.[0] ?? '';
    const [id1, id2] = [idOf(1), idOf(2)];
    expect(id1).not.toBe('');
    expect(id2).not.toBe('');

    const ended1: { code: number; reason: string }[] = [];
    tab1.centrifuge.on('disconnected', (ctx) => ended1.push({ code: ctx.code, reason: ctx.reason }));
    expect(await relais.call('disconnect', { user: 'dis-user', client: id1 })).toEqual({});
    await waitFor(() => ended1.length === 1, 5000, 'tab 1 disconnected');
    expect(ended1[0]).toEqual({ code: 3503, reason: 'force disconnect' });

    // The whitelist spares tab 2.
    await relais.call('disconnect', { user: 'dis-user', whitelist: [id2] });
    await sleep(300);
    expect(tab2.centrifuge.state).toBe('connected');

    // A reconnect code: the SDK comes back by itself.
    const reconnecting: number[] = [];
    tab2.centrifuge.on('connecting', (ctx) => reconnecting.push(ctx.code));
    await relais.call('disconnect', { user: 'dis-user', disconnect: { code: 3011, reason: 'go elsewhere' } });
    await waitFor(() => reconnecting.includes(3011), 5000, 'tab 2 told to reconnect');
    await tab2.centrifuge.ready(5000);
    expect(tab1.centrifuge.state).toBe('disconnected');
    expect(bystander.centrifuge.state).toBe('connected');
  });

  it('send arrives as a message event on the user connections', async () => {
    const c = await client('msg-user');
    const other = await client('msg-other');
    const got: unknown[] = [];
    const otherGot: unknown[] = [];
    c.centrifuge.on('message', (ctx: MessageContext) => got.push(ctx.data));
    other.centrifuge.on('message', (ctx: MessageContext) => otherGot.push(ctx.data));
    expect(await relais.call('send', { user: 'msg-user', data: { hello: 'there' } })).toEqual({});
    await waitFor(() => got.length === 1, 5000, 'message');
    expect(got).toEqual([{ hello: 'there' }]);
    await sleep(100);
    expect(otherGot).toEqual([]);
  });

  it('publish to @user reaches the personal channel', async () => {
    const dora = await client('dora');
    await subscribed(dora, 'user:dora');
    const result = await relais.call<Position>('publish', { channel: '@dora', data: { text: 'hi' } });
    expect(result.offset).toBe(1);
    await waitFor(() => dora.pubs('user:dora').length === 1, 5000, 'direct message');
    expect(dora.pubs('user:dora')[0]?.data).toEqual({ text: 'hi' });
    const history = await relais.call<HistoryResult>('history', { channel: 'user:dora', limit: 10 });
    expect(history.publications).toEqual([{ data: { text: 'hi' }, offset: 1 }]);
  });

  it('batch runs commands in order or in parallel, a failing command answered in place', async () => {
    const sequential = await relais.call<{ replies: unknown[] }>('batch', {
      commands: [
        { publish: { channel: 'chat:batch', data: { n: 1 } } },
        { publish: { channel: 'nope:batch', data: { n: 2 } } },
        { history: { channel: 'chat:batch', limit: 10 } },
        { batch: { commands: [] } },
        { publish: { channel: 'chat:batch', data: 1 }, history: { channel: 'chat:batch' } },
        { nonsense: {} },
      ],
    });
    const epoch = expect.any(String) as unknown;
    expect(sequential.replies).toEqual([
      { publish: { offset: 1, epoch } },
      { error: { code: 102, message: expect.stringContaining('nope') as unknown } },
      { history: { publications: [{ data: { n: 1 }, offset: 1 }], offset: 1, epoch } },
      { error: { code: 107, message: expect.any(String) as unknown } },
      { error: { code: 107, message: expect.any(String) as unknown } },
      { error: { code: 104, message: expect.any(String) as unknown } },
    ]);

    const reader = await client('batch-reader');
    await subscribed(reader, 'chat:batch-p');
    const parallel = await relais.call<{ replies: unknown[] }>('batch', {
      parallel: true,
      commands: [
        { publish: { channel: 'chat:batch-p', data: { n: 1 } } },
        { publish: { channel: 'chat:batch-p', data: 'x'.repeat(MAX_PUBLICATION_BYTES) } },
        { broadcast: { channels: ['chat:batch-p', 'chat:batch-q'], data: { n: 2 } } },
        { presence_stats: { channel: 'chat:batch-p' } },
      ],
    });
    expect(parallel.replies).toHaveLength(4);
    expect(parallel.replies[1]).toEqual({ error: { code: 106, message: expect.any(String) as unknown } });
    expect(parallel.replies[3]).toEqual({ presence_stats: { num_clients: 1, num_users: 1 } });
    await waitFor(() => reader.pubs('chat:batch-p').length === 2, 5000, 'both publications of the parallel batch');
    expect(reader.pubs('chat:batch-p').map((p) => p.offset)).toEqual([1, 2]);
    expect(numbers(reader.pubs('chat:batch-p')).sort()).toEqual([1, 2]);

    expect(await post('batch', JSON.stringify({ commands: { publish: {} } }))).toEqual({ status: 400, body: { error: { code: 107, message: expect.any(String) as unknown } } });
  });

  it('answers bad requests with the documented codes and HTTP statuses', async () => {
    const key = { 'x-api-key': relais.apiKey, 'content-type': 'application/json' };
    const publishBody = JSON.stringify({ channel: 'chat:errors', data: { n: 1 } });
    const cases: [string, string, string | undefined, Record<string, string>, number, number][] = [
      ['no API key', 'publish', publishBody, { 'content-type': 'application/json' }, 401, 101],
      ['a wrong API key', 'publish', publishBody, { ...key, 'x-api-key': `${relais.apiKey}x` }, 401, 101],
      ['an empty API key', 'publish', publishBody, { ...key, 'x-api-key': '' }, 401, 101],
      ['a wrong key, even for an unknown method', 'nope', publishBody, { 'x-api-key': 'wrong' }, 401, 101],
      ['an unknown method', 'publish_everything', publishBody, key, 404, 104],
      ['a body that is not JSON', 'publish', '{"channel": "chat:errors", data: }', key, 400, 107],
      ['a body that is not an object', 'publish', '[1, 2]', key, 400, 107],
      ['a channel that is not a string', 'publish', JSON.stringify({ channel: 5, data: {} }), key, 400, 107],
      ['no data', 'publish', JSON.stringify({ channel: 'chat:errors' }), key, 400, 107],
      ['a limit that is not a number', 'history', JSON.stringify({ channel: 'chat:errors', limit: '3' }), key, 400, 107],
      ['an unknown parameter', 'publish', JSON.stringify({ channel: 'chat:errors', data: 1, chanel: 'x' }), key, 400, 107],
      ['a disconnect code out of range', 'disconnect', JSON.stringify({ user: 'x', disconnect: { code: 1000, reason: '' } }), key, 400, 107],
      ['an invalid channel name', 'publish', JSON.stringify({ channel: 'chat:a b', data: 1 }), key, 400, 107],
      ['an unknown namespace', 'publish', JSON.stringify({ channel: 'nope:x', data: 1 }), key, 404, 102],
      ['history where the namespace keeps none', 'history', JSON.stringify({ channel: 'plain:x', limit: 1 }), key, 404, 108],
      ['presence where the namespace has none', 'presence', JSON.stringify({ channel: 'plain:x' }), key, 404, 108],
      ['data over client.max_publication_bytes', 'publish', JSON.stringify({ channel: 'chat:errors', data: 'x'.repeat(MAX_PUBLICATION_BYTES) }), key, 413, 106],
      ['a body over the request limit', 'publish', JSON.stringify({ channel: 'chat:errors', data: 'x'.repeat(200_000) }), key, 413, 106],
    ];
    for (const [what, method, body, headers, status, code] of cases) {
      const reply = await post(method, body, headers);
      const error = (reply.body as { error?: { code?: unknown; message?: unknown } }).error;
      expect({ what, status: reply.status, code: error?.code, message: typeof error?.message }).toEqual({ what, status, code, message: 'string' });
    }

    // A "__proto__" key is an unknown parameter like any other, not a prototype.
    const proto = await post('publish', '{"channel":"chat:errors","data":1,"__proto__":{"channel":"chat:other"}}', key);
    expect(proto.status).toBe(400);

    // None of the refused publishes went through.
    expect(await relais.call('history', { channel: 'chat:errors', limit: 10 })).toMatchObject({ publications: [], offset: 0 });
    // Server SDKs and curl do not always say the body is JSON, or use the Authorization header.
    expect((await post('publish', publishBody, { 'x-api-key': relais.apiKey })).status).toBe(200);
    expect((await post('publish', publishBody, { authorization: `apikey ${relais.apiKey}`, 'content-type': 'text/plain' })).status).toBe(200);
    expect(numbers((await relais.call<HistoryResult>('history', { channel: 'chat:errors', limit: 10 })).publications)).toEqual([1, 1]);
    for (const [method, body] of [['info', '{}'], ['nope', '{}']] as const) {
      const response = await fetch(`${relais.httpUrl}/api/${method}`, { method: 'POST', headers: key, body, signal: AbortSignal.timeout(5000) });
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      await response.body?.cancel();
    }
    const health = await fetch(`${relais.httpUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
    expect(await health.json()).toEqual({ status: 'ok' });
  });
});
