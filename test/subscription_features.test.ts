/**
 * What a subscribe request may ask beyond a plain stream, against a real Relais process
 * and the real `centrifuge` SDK (JSON and Protobuf builds) and EventSource: tag filters
 * (over WebSocket and SSE), fossil delta compression, and a documented error for every
 * field or value Relais does not serve.
 */
import type { FilterNode, Subscription } from 'centrifuge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RawClient, sdkClient, sleep, waitFor, type SdkClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';
import { NEWEST_PROTOBUF_SDK, NEWEST_SDK, type SdkRelease } from './helpers/sdk_versions.js';
import { EventSourceClient } from './helpers/sse.js';

let relais: RelaisProcess;
const closers: (() => void)[] = [];

beforeAll(async () => {
  relais = await startRelais({
    config: {
      namespaces: {
        orders: { history_size: 100, history_ttl: '1h', force_recovery: true, allow_subscribe: 'authenticated' },
        docs: { history_size: 100, history_ttl: '1h', force_recovery: true, allow_subscribe: 'authenticated', allowed_delta_types: ['fossil'] },
        plain: { allow_subscribe: 'authenticated', allow_publish: 'authenticated' },
      },
    },
  });
});

afterAll(async () => {
  for (const close of closers) close();
  await relais.stop();
});

async function client(user: string, sdk: SdkRelease, websocket?: typeof WebSocket): Promise<SdkClient> {
  const c = await sdkClient(relais, user, { sdk, ...(websocket ? { websocket } : {}) });
  closers.push(() => c.close());
  return c;
}

interface Order {
  readonly n: number;
  readonly amount: number;
  readonly region: string;
}

describe('tag filters', () => {
  // Seed 004's content-based routing: "orders above 100" reaches only those who asked for it.
  const FILTERS: { name: string; tf: FilterNode; test: (o: Order) => boolean }[] = [
    { name: 'above 100', tf: { key: 'amount', cmp: 'gt', val: '100' }, test: (o: Order) => o.amount > 100 },
    { name: 'in fr or de', tf: { key: 'region', cmp: 'in', vals: ['fr', 'de'] }, test: (o: Order) => o.region === 'fr' || o.region === 'de' },
    {
      name: 'us and at most 50',
      tf: { op: 'and', nodes: [{ key: 'region', cmp: 'eq', val: 'us' }, { op: 'not', nodes: [{ key: 'amount', cmp: 'gt', val: '50' }] }] },
      test: (o: Order) => o.region === 'us' && o.amount <= 50,
    },
  ];
  const REGIONS = ['fr', 'de', 'us', 'jp'];
  const ORDERS: Order[] = Array.from({ length: 40 }, (_, i) => ({ n: i + 1, amount: (i * 37) % 200, region: REGIONS[i % 4] as string }));

  it('gives 3 subscribers with different filters exactly the publications that match theirs, over WebSocket and SSE', async () => {
    const channel = 'orders:live';
    const subscribers: { name: string; test: (o: Order) => boolean; received: () => number[] }[] = [];
    for (const [i, filter] of FILTERS.entries()) {
      // JSON and Protobuf builds alternate: the filter travels in both encodings.
      const sdk = i % 2 === 0 ? NEWEST_SDK : NEWEST_PROTOBUF_SDK;
      const c = await client(`buyer-${i}`, sdk);
      const sub = c.subscribe(channel, { tagsFilter: filter.tf });
      await sub.ready(5000);
      subscribers.push({ name: `sdk ${sdk.protocol} ${filter.name}`, test: filter.test, received: () => c.pubs(channel).map((p) => (sdk.decode(p.data) as Order).n) });

      const token = await relais.token(`sse-buyer-${i}`);
      const sse = new EventSourceClient(`${relais.httpUrl}/sse?channel=${channel}&tf=${encodeURIComponent(JSON.stringify(filter.tf))}`, { token });
      closers.push(() => sse.close());
      await sse.waitForNamed('subscribed', 1);
      subscribers.push({ name: `sse ${filter.name}`, test: filter.test, received: () => sse.publications(channel).map((p) => (p.data as Order).n) });
    }

    for (const order of ORDERS) {
      await relais.call('publish', { channel, data: order, tags: { amount: String(order.amount), region: order.region } });
    }
    for (const s of subscribers) {
      const expected = ORDERS.filter(s.test).map((o) => o.n);
      expect(expected.length).toBeGreaterThan(0);
      await waitFor(() => s.received().length >= expected.length, 10_000, `${s.name}: ${expected.length} publications`);
    }
    // A publication that does not match would have arrived by now (the last ones published match some filter).
    await sleep(300);
    for (const s of subscribers) expect(s.received(), s.name).toEqual(ORDERS.filter(s.test).map((o) => o.n));
  });

  it('refuses a malformed filter: error 107 over WebSocket, HTTP 400 over SSE', async () => {
    for (const sdk of [NEWEST_SDK, NEWEST_PROTOBUF_SDK]) {
      const c = await client(`bad-filter-${sdk.protocol}`, sdk);
      const sub = c.centrifuge.newSubscription('orders:live', { tagsFilter: { key: 'amount', cmp: 'like', val: '1' } as unknown as FilterNode });
      const unsubscribed = new Promise<{ code: number; reason: string }>((resolve) => sub.once('unsubscribed', resolve));
      sub.subscribe();
      expect(await unsubscribed).toMatchObject({ code: 107 });
      expect(c.centrifuge.state).toBe('connected');
    }
    const token = await relais.token('sse-bad');
    for (const tf of ['{"key":"amount","cmp":"gt","val":"lots"}', 'not json', '{"op":"not"}']) {
      const response = await fetch(`${relais.httpUrl}/sse?channel=orders:live&tf=${encodeURIComponent(tf)}`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status, tf).toBe(400);
      const body = (await response.json()) as { error: { code: number; message: string } };
      expect(body.error.code).toBe(107);
      expect(body.error.message).toContain('tags filter');
    }
  });
});

/** A WebSocket class for the SDK that counts the bytes of every message it receives. */
function countingWebSocket(counter: { bytes: number }): typeof WebSocket {
  return class CountingWebSocket extends WebSocket {
    constructor(address: string, protocols?: string | string[]) {
      super(address, protocols);
      // Buffers for JSON, ArrayBuffers once the Protobuf build sets binaryType.
      this.on('message', (data: Buffer | ArrayBuffer) => {
        counter.bytes += data.byteLength;
      });
    }
  } as unknown as typeof WebSocket;
}

/** A ~2 KB JSON document (an order book page) of which each version changes a few fields. */
function documentVersion(version: number): Record<string, unknown> {
  const lines = Array.from({ length: 24 }, (_, i) => ({
    sku: `SKU-${1000 + i}`,
    label: `Article number ${i} of the catalogue`,
    qty: i === version % 24 ? version : i + 1,
    price: 10 + i,
  }));
  return { id: 'book-1', version, status: version % 3 === 0 ? 'open' : 'pending', updatedBy: `user-${version % 5}`, lines };
}

describe('fossil delta compression', () => {
  it('delivers identical documents with delta on and off, over JSON and Protobuf, with fewer bytes, through a reconnect', async () => {
    const channel = 'docs:book';
    const VERSIONS = 30;
    const expected = Array.from({ length: VERSIONS }, (_, i) => documentVersion(i + 1));
    const cases: { name: string; sdk: SdkRelease; delta: boolean; counter: { bytes: number }; c?: SdkClient; sub?: Subscription }[] = [
      { name: 'json full', sdk: NEWEST_SDK, delta: false, counter: { bytes: 0 } },
      { name: 'json delta', sdk: NEWEST_SDK, delta: true, counter: { bytes: 0 } },
      { name: 'protobuf full', sdk: NEWEST_PROTOBUF_SDK, delta: false, counter: { bytes: 0 } },
      { name: 'protobuf delta', sdk: NEWEST_PROTOBUF_SDK, delta: true, counter: { bytes: 0 } },
    ];
    for (const [i, k] of cases.entries()) {
      k.c = await client(`reader-${i}`, k.sdk, countingWebSocket(k.counter));
      k.sub = k.c.subscribe(channel, k.delta ? { delta: 'fossil' } : {});
      await k.sub.ready(5000);
      k.counter.bytes = 0;
    }
    const publish = async (from: number, to: number): Promise<void> => {
      for (let v = from; v <= to; v++) await relais.call('publish', { channel, data: expected[v - 1] });
    };
    await publish(1, 10);
    // A subscriber joining mid-stream gets the whole document first: it never had the base of the next delta.
    const late = await client('reader-late', NEWEST_PROTOBUF_SDK);
    const lateSub = late.subscribe(channel, { delta: 'fossil' });
    await lateSub.ready(5000);
    await publish(11, 15);
    for (const k of cases) await waitFor(() => k.c?.pubs(channel).length === 15, 10_000, `${k.name}: 15 documents`);

    // A reconnect recovers what was missed in full, then the chain of deltas starts again.
    const reconnecting = cases[1] as (typeof cases)[number];
    await relais.call('disconnect', { user: 'reader-1', disconnect: { code: 3011, reason: 'force reconnect' } });
    await waitFor(() => (reconnecting.c?.centrifuge.state as string) !== 'connected', 5000, 'reader-1 disconnected');
    await publish(16, 20);
    await waitFor(() => (reconnecting.c?.centrifuge.state as string) === 'connected', 10_000, 'reader-1 back');
    await publish(21, VERSIONS);
    for (const k of cases) await waitFor(() => k.c?.pubs(channel).length === VERSIONS, 10_000, `${k.name}: ${VERSIONS} documents`);
    await waitFor(() => late.pubs(channel).length === VERSIONS - 10, 10_000, 'late subscriber: 20 documents');
    expect(late.pubs(channel).map((p) => NEWEST_PROTOBUF_SDK.decode(p.data))).toEqual(expected.slice(10));

    for (const k of cases) {
      expect(k.c?.pubs(channel).map((p) => k.sdk.decode(p.data)), k.name).toEqual(expected);
      const stats = k.sub?.deltaStats();
      if (k.delta) expect(stats?.numDeltaPayloads, k.name).toBeGreaterThan(VERSIONS / 2);
    }
    const bytes = Object.fromEntries(cases.map((k) => [k.name, k.counter.bytes]));
    // Deltas only change bytes on the wire, never the documents: both protocols carry fewer.
    expect(bytes['json delta']).toBeLessThan((bytes['json full'] as number) / 3);
    expect(bytes['protobuf delta']).toBeLessThan((bytes['protobuf full'] as number) / 3);
  });
});

describe('fields Relais does not serve', () => {
  it('answers each with error 107 naming it, and the connection stays', async () => {
    const raw = await RawClient.open(relais);
    closers.push(() => raw.close());
    await raw.connect(await relais.token('nosy'));
    const cases: [Record<string, unknown>, string][] = [
      [{ subscribe: { channel: 'orders:a', type: 1 } }, 'subscription type 1'],
      [{ subscribe: { channel: 'docs:a', delta: 'xdelta' } }, 'delta type "xdelta"'],
      [{ subscribe: { channel: 'orders:a', delta: 'fossil' } }, 'allowed_delta_types'],
      [{ subscribe: { channel: 'docs:a', delta: 'fossil', tf: { key: 'a', cmp: 'ex' } } }, 'cannot be used together'],
      [{ subscribe: { channel: 'orders:a', flag: 8 } }, 'subscription flag 8'],
      [{ subscribe: { channel: 'orders:a', phase: 1 } }, 'map subscriptions'],
      [{ publish: { channel: 'plain:a', data: {}, key: 'k' } }, 'map publications'],
      [{ sub_refresh: { channel: 'orders:a', token: 't', items: [{ key: 'k' }] } }, 'item tracking'],
    ];
    let id = 10;
    for (const [command, message] of cases) {
      raw.sendCommands({ id, ...command });
      const reply = await raw.reply(id);
      expect(reply['error'], JSON.stringify(command)).toMatchObject({ code: 107 });
      expect((reply['error'] as { message: string }).message).toContain(message);
      id++;
    }
    raw.sendCommands({ id, subscribe: { channel: 'orders:a' } });
    expect(await raw.reply(id)).toHaveProperty('subscribe');
    expect(raw.closeCode).toBeUndefined();
  });

  it('closes a connection sending frames of the other protocol: binary on JSON, text on Protobuf (3501)', async () => {
    const json = await RawClient.open(relais);
    await json.connect(await relais.token('mixed-json'));
    json.ws.send(Buffer.from([0x0a, 0x00]), { binary: true });
    expect((await json.closed()).code).toBe(3501);

    const protobuf = new WebSocket(relais.wsUrl, 'centrifuge-protobuf');
    const closed = new Promise<number>((resolve) => protobuf.once('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      protobuf.once('open', () => resolve());
      protobuf.once('error', reject);
    });
    expect(protobuf.protocol).toBe('centrifuge-protobuf');
    protobuf.send(JSON.stringify({ id: 1, connect: {} }));
    expect(await closed).toBe(3501);
  });
});
