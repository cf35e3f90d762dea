/**
 * The proxies to the app backend (docs/proxy.md) end to end: a real Relais process, a real
 * HTTP backend (test/helpers/proxy_backend.ts) and the `centrifuge` SDK connecting with a
 * cookie and no token. For each hook: allowed, refused with a code, data replaced, backend
 * slower than the timeout, backend down; and nothing refused ever reaches a channel.
 */
import { Centrifuge, type PublicationContext, type Subscription } from 'centrifuge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkClient, sleep, waitFor } from './helpers/clients.js';
import { headerWebSocket, ProxyBackend, type ProxyRequest } from './helpers/proxy_backend.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const PROXY_TIMEOUT_MS = 400;

/** The user a connect request's cookie names (`session=<user>`), as an app's session store would. */
function sessionUser(request: ProxyRequest): string | undefined {
  const cookie = request.headers['cookie'] ?? '';
  return /(?:^|;\s*)session=([^;]+)/.exec(cookie)?.[1];
}

interface Connection {
  readonly centrifuge: Centrifuge;
  readonly pubs: PublicationContext[];
  subscribe(channel: string): Subscription;
}

function connection(
  relais: RelaisProcess,
  cookie: string,
  options: { data?: unknown; extraHeaders?: Record<string, string>; emulatedHeaders?: Record<string, string> } = {},
): Connection {
  const centrifuge = new Centrifuge(relais.wsUrl, {
    websocket: headerWebSocket({ cookie, ...options.extraHeaders }),
    minReconnectDelay: 100,
    maxReconnectDelay: 300,
    timeout: 3000,
    ...(options.data !== undefined ? { data: options.data } : {}),
    ...(options.emulatedHeaders ? { headers: options.emulatedHeaders } : {}),
  });
  const pubs: PublicationContext[] = [];
  return {
    centrifuge,
    pubs,
    subscribe(channel) {
      const sub = centrifuge.newSubscription(channel, { minResubscribeDelay: 100, maxResubscribeDelay: 300 });
      sub.on('publication', (ctx) => pubs.push(ctx));
      sub.subscribe();
      return sub;
    },
  };
}

describe('proxies to the app backend', () => {
  let backend: ProxyBackend;
  let relais: RelaisProcess;
  const open: Centrifuge[] = [];

  function track(c: Connection): Connection {
    open.push(c.centrifuge);
    return c;
  }

  beforeAll(async () => {
    backend = await ProxyBackend.start();
    backend.on('/connect', (r) => {
      const user = sessionUser(r);
      if (user === undefined) return { answer: { error: { code: 4401, message: 'no session' } } };
      if (user === 'banned') return { answer: { disconnect: { code: 4501, reason: 'banned' } } };
      if (user === 'slow') return { answer: { result: { user } }, delayMs: PROXY_TIMEOUT_MS * 3 };
      if (user === 'expiring') return { answer: { result: { user, expire_at: Math.floor(Date.now() / 1000) + 1 } } };
      return {
        answer: {
          result: {
            user,
            info: { name: user.toUpperCase() },
            data: { welcome: user, echo: r.body['data'] ?? null },
            meta: { plan: 'pro' },
            // Server-side subscriptions: one plain, one with its channel info and subscribe data.
            channels: ['lobby'],
            subs: { [`mod:${user}`]: { info: { own: true }, data: { first: true } } },
          },
        },
      };
    });
    backend.on('/subscribe', (r) => {
      const channel = String(r.body['channel']);
      if (channel.endsWith(':secret')) return { answer: { error: { code: 4403, message: 'not for you' } } };
      if (channel.endsWith(':slow')) return { answer: { result: {} }, delayMs: PROXY_TIMEOUT_MS * 3 };
      if (channel.endsWith(':short')) return { answer: { result: { expire_at: Math.floor(Date.now() / 1000) + 1 } } };
      return { answer: { result: { info: { seat: 7 }, data: { topic: channel } } } };
    });
    backend.on('/sub_refresh', () => ({ answer: { result: { expired: true } } }));
    backend.on('/rpc', (r) => {
      if (r.body['method'] === 'fail') return { answer: { error: { code: 1500, message: 'no such thing' } } };
      return { answer: { result: { data: { backend: 'main', method: r.body['method'] } } } };
    });
    backend.on('/billing', (r) => ({ answer: { result: { data: { backend: 'billing', method: r.body['method'], user: r.body['user'] } } } }));
    backend.on('/publish', (r) => {
      const data = r.body['data'] as { text?: string; mode?: string };
      if (data.mode === 'refuse') return { answer: { error: { code: 4000, message: 'moderated' } } };
      if (data.mode === 'slow') return { answer: { result: {} }, delayMs: PROXY_TIMEOUT_MS * 3 };
      if (data.mode === 'crash') return { drop: true };
      if (data.mode === 'http500') return { status: 500 };
      if (data.mode === 'kick') return { answer: { disconnect: { code: 4502, reason: 'spam' } } };
      return { answer: { result: { data: { text: String(data.text).toUpperCase(), checked: true } } } };
    });
    relais = await startRelais({
      config: {
        proxy: {
          connect_url: `${backend.url}/connect`,
          refresh_url: `${backend.url}/refresh`,
          subscribe_url: `${backend.url}/subscribe`,
          sub_refresh_url: `${backend.url}/sub_refresh`,
          publish_url: `${backend.url}/publish`,
          rpc_url: `${backend.url}/rpc`,
          rpc_namespaces: { billing: `${backend.url}/billing` },
          timeout: `${PROXY_TIMEOUT_MS}ms`,
          http_headers: ['Cookie', 'X-Request-Id'],
          emulated_headers: ['Authorization', 'Cookie'],
          static_headers: { 'X-Relais-Secret': 'shared-with-backend' },
          include_connection_meta: true,
        },
        namespaces: {
          mod: {
            proxy_subscribe: true,
            proxy_publish: true,
            proxy_sub_refresh: true,
            history_size: 100,
            history_ttl: '5m',
            allow_history: true,
          },
        },
      },
    });
  });

  afterAll(async () => {
    for (const c of open) c.disconnect();
    await relais?.stop();
    await backend?.close();
  });

  it('authenticates a connection from its cookie, with no token: user, info, data and the forwarded headers', async () => {
    const alice = track(
      connection(relais, 'session=alice; theme=dark', {
        data: { app: 'web' },
        extraHeaders: { 'x-request-id': 'r-1', 'x-not-forwarded': 'no' },
        // Headers emulation (centrifuge-js `headers`): a forged cookie loses to the real one.
        emulatedHeaders: { Authorization: 'Bearer from-the-page', Cookie: 'session=forged' },
      }),
    );
    let connectedData: unknown;
    alice.centrifuge.on('connected', (ctx) => {
      connectedData = ctx.data as unknown;
    });
    const serverSide = new Map<string, unknown>();
    alice.centrifuge.on('subscribed', (ctx) => serverSide.set(ctx.channel, ctx.data as unknown));
    const serverPubs: { channel: string; data: unknown; info?: unknown }[] = [];
    alice.centrifuge.on('publication', (ctx) => serverPubs.push({ channel: ctx.channel, data: ctx.data as unknown, info: ctx.info }));
    alice.centrifuge.connect();
    await alice.centrifuge.ready(5000);
    expect(connectedData).toEqual({ welcome: 'alice', echo: { app: 'web' } });
    expect([...serverSide.keys()].sort()).toEqual(['lobby', 'mod:alice']);
    expect(serverSide.get('mod:alice')).toEqual({ first: true });
    await relais.call('publish', { channel: 'mod:alice', data: { note: 1 } });
    await waitFor(() => serverPubs.length > 0, 5000, 'a server-side publication');
    expect(serverPubs[0]).toMatchObject({ channel: 'mod:alice', data: { note: 1 } });
    const request = backend.received('/connect').find((r) => sessionUser(r) === 'alice');
    expect(request?.body).toMatchObject({ transport: 'websocket', protocol: 'json', encoding: 'json', data: { app: 'web' } });
    expect(typeof request?.body['client']).toBe('string');
    expect(request?.headers['cookie']).toBe('session=alice; theme=dark');
    expect(request?.headers['x-request-id']).toBe('r-1');
    expect(request?.headers['x-relais-secret']).toBe('shared-with-backend');
    expect(request?.headers['x-not-forwarded']).toBeUndefined();
    expect(request?.headers['authorization']).toBe('Bearer from-the-page');
    expect(request?.headers['content-type']).toBe('application/json');
  });

  it('refuses a connection the backend refuses: its error code, or its disconnect code with no reconnect', async () => {
    const anonymous = track(connection(relais, 'theme=dark'));
    const refused = new Promise<{ code: number; reason: string }>((resolve) => anonymous.centrifuge.on('disconnected', resolve));
    anonymous.centrifuge.connect();
    expect(await refused).toMatchObject({ code: 4401, reason: 'no session' });

    const banned = track(connection(relais, 'session=banned'));
    const kicked = new Promise<{ code: number; reason: string }>((resolve) => banned.centrifuge.on('disconnected', resolve));
    banned.centrifuge.connect();
    expect(await kicked).toMatchObject({ code: 4501, reason: 'banned' });
    await sleep(500);
    expect(banned.centrifuge.state).toBe('disconnected');
    expect(backend.received('/connect').filter((r) => sessionUser(r) === 'banned')).toHaveLength(1);
  });

  it('answers a temporary error when the backend is slower than the timeout: the SDK retries, never hangs', async () => {
    const slow = track(connection(relais, 'session=slow'));
    const errors: { code: number; temporary?: boolean }[] = [];
    slow.centrifuge.on('error', (ctx) => errors.push(ctx.error));
    const started = Date.now();
    slow.centrifuge.connect();
    await waitFor(() => errors.length > 0, 5000, 'connect error');
    expect(errors[0]).toMatchObject({ code: 100, temporary: true });
    expect(Date.now() - started).toBeLessThan(PROXY_TIMEOUT_MS + 2500);
    await waitFor(() => backend.received('/connect').filter((r) => sessionUser(r) === 'slow').length >= 2, 5000, 'a reconnect');
    slow.centrifuge.disconnect();
  });

  it('subscribes through the subscribe proxy (info, data), refuses with its code, and answers a temporary error when slow', async () => {
    const bob = track(connection(relais, 'session=bob'));
    bob.centrifuge.connect();
    await bob.centrifuge.ready(5000);
    const sub = bob.centrifuge.newSubscription('mod:lobby');
    const subscribed = new Promise<unknown>((resolve) => sub.on('subscribed', (ctx) => resolve(ctx.data)));
    sub.subscribe();
    expect(await subscribed).toEqual({ topic: 'mod:lobby' });
    const request = backend.received('/subscribe').find((r) => r.body['channel'] === 'mod:lobby');
    expect(request?.body).toMatchObject({ user: 'bob', channel: 'mod:lobby', transport: 'websocket', meta: { plan: 'pro' } });

    const secret = bob.centrifuge.newSubscription('mod:secret');
    const unsubscribed = new Promise<{ code: number; reason: string }>((resolve) => secret.on('unsubscribed', resolve));
    secret.subscribe();
    expect(await unsubscribed).toMatchObject({ code: 4403, reason: 'not for you' });

    const slow = bob.centrifuge.newSubscription('mod:slow');
    const subErrors: { code: number; temporary?: boolean }[] = [];
    slow.on('error', (ctx) => subErrors.push(ctx.error));
    slow.subscribe();
    await waitFor(() => subErrors.length > 0, 5000, 'subscribe error');
    expect(subErrors[0]).toMatchObject({ code: 100, temporary: true });
    expect(slow.state).not.toBe('subscribed');
    slow.unsubscribe();
  });

  it('publishes what the backend allows, with its replacement data; nothing it refuses or cannot judge reaches the channel', async () => {
    const carol = track(connection(relais, 'session=carol'));
    const dave = track(connection(relais, 'session=dave'));
    carol.centrifuge.connect();
    dave.centrifuge.connect();
    await Promise.all([carol.centrifuge.ready(5000), dave.centrifuge.ready(5000)]);
    const watch = dave.subscribe('mod:room');
    const write = carol.subscribe('mod:room');
    await Promise.all([watch.ready(5000), write.ready(5000)]);

    await write.publish({ text: 'hello' });
    const outcomes: Record<string, unknown> = {};
    for (const mode of ['refuse', 'slow', 'crash', 'http500']) {
      outcomes[mode] = await write.publish({ text: mode, mode }).then(
        () => 'published',
        (err: { code: number; message: string; temporary?: boolean }) => ({ code: err.code, temporary: err.temporary === true, message: err.message }),
      );
    }
    await write.publish({ text: 'bye' });
    await waitFor(() => dave.pubs.length >= 2, 5000, 'the allowed publications');
    // The slow answer arrives after the timeout: it must not publish late either.
    await sleep(PROXY_TIMEOUT_MS * 3);

    expect(outcomes['refuse']).toEqual({ code: 4000, temporary: false, message: 'moderated' });
    for (const mode of ['slow', 'crash', 'http500']) expect(outcomes[mode]).toMatchObject({ code: 100, temporary: true });
    expect(dave.pubs.map((p) => p.data as unknown)).toEqual([
      { text: 'HELLO', checked: true },
      { text: 'BYE', checked: true },
    ]);
    expect(dave.pubs.map((p) => p.offset)).toEqual([1, 2]);
    expect(dave.pubs[0]?.info).toMatchObject({ user: 'carol', connInfo: { name: 'CAROL' }, chanInfo: { seat: 7 } });
    const history = await relais.call<{ publications: unknown[] }>('history', { channel: 'mod:room', limit: 10 });
    expect(history.publications).toHaveLength(2);
    expect(backend.received('/publish').find((r) => (r.body['data'] as { text?: string }).text === 'hello')?.body).toMatchObject({
      user: 'carol',
      channel: 'mod:room',
      meta: { plan: 'pro' },
    });
  });

  it('disconnects a publisher the backend answers with a disconnect, and publishes nothing', async () => {
    const erin = track(connection(relais, 'session=erin'));
    erin.centrifuge.connect();
    await erin.centrifuge.ready(5000);
    const sub = erin.subscribe('mod:kick');
    await sub.ready(5000);
    const closed = new Promise<{ code: number; reason: string }>((resolve) => erin.centrifuge.on('disconnected', resolve));
    sub.publish({ text: 'spam', mode: 'kick' }).catch(() => undefined);
    expect(await closed).toMatchObject({ code: 4502, reason: 'spam' });
    const history = await relais.call<{ publications: unknown[] }>('history', { channel: 'mod:kick', limit: 10 });
    expect(history.publications).toHaveLength(0);
  });

  it('asks the refresh proxy when a proxied connection expires, and ends it when the backend says expired', async () => {
    let calls = 0;
    backend.on('/refresh', () => {
      calls++;
      if (calls === 1) return { answer: { result: { expire_at: Math.floor(Date.now() / 1000) + 1 } } };
      return { answer: { result: { expired: true } } };
    });
    const frank = track(connection(relais, 'session=expiring'));
    const expired = new Promise<{ code: number; reason: string }>((resolve) =>
      frank.centrifuge.on('connecting', (ctx) => {
        if (ctx.code === 3005) resolve(ctx);
      }),
    );
    frank.centrifuge.connect();
    await frank.centrifuge.ready(5000);
    await waitFor(() => calls >= 1, 5000, 'a refresh request');
    // Prolonged by the first answer.
    expect(frank.centrifuge.state).toBe('connected');
    expect(await expired).toMatchObject({ code: 3005, reason: 'connection expired' });
    frank.centrifuge.disconnect();
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(backend.received('/refresh')[0]?.body).toMatchObject({ user: 'expiring', transport: 'websocket' });
  });

  it('asks the sub_refresh proxy when a proxied subscription expires: expired unsubscribes it, and the SDK subscribes again', async () => {
    const gina = track(connection(relais, 'session=gina'));
    gina.centrifuge.connect();
    await gina.centrifuge.ready(5000);
    const before = backend.received('/subscribe').filter((r) => r.body['channel'] === 'mod:short').length;
    gina.subscribe('mod:short');
    await waitFor(() => backend.received('/sub_refresh').some((r) => r.body['channel'] === 'mod:short'), 5000, 'a sub_refresh request');
    await waitFor(() => backend.received('/subscribe').filter((r) => r.body['channel'] === 'mod:short').length >= before + 2, 5000, 'a new subscribe');
    expect(backend.received('/sub_refresh').find((r) => r.body['channel'] === 'mod:short')?.body).toMatchObject({ user: 'gina' });
  });

  it('routes rpc by method namespace to its backend, the rest to rpc_url, with the connection fields and headers', async () => {
    const hana = track(connection(relais, 'session=hana'));
    hana.centrifuge.connect();
    await hana.centrifuge.ready(5000);
    expect((await hana.centrifuge.rpc('billing:charge', { cents: 5 })).data).toEqual({ backend: 'billing', method: 'billing:charge', user: 'hana' });
    expect((await hana.centrifuge.rpc('profile', {})).data).toEqual({ backend: 'main', method: 'profile' });
    await expect(hana.centrifuge.rpc('fail', {})).rejects.toMatchObject({ code: 1500, message: 'no such thing' });
    const request = backend.received('/billing')[0];
    expect(request?.body).toMatchObject({ transport: 'websocket', protocol: 'json', encoding: 'json', user: 'hana', data: { cents: 5 }, meta: { plan: 'pro' } });
    expect(request?.headers['cookie']).toBe('session=hana');
  });

  it('authenticates SSE streams through the connect proxy and checks their channels with the subscribe proxy', async () => {
    const controller = new AbortController();
    const deadline = setTimeout(() => controller.abort(), 10_000);
    try {
      const stream = await fetch(`${relais.httpUrl}/sse?channel=mod:feed`, { headers: { cookie: 'session=ivan' }, signal: controller.signal });
      expect(stream.status).toBe(200);
      if (!stream.body) throw new Error('no body');
      const reader: ReadableStreamDefaultReader<Uint8Array> = stream.body.getReader();
      let text = '';
      const readUntil = async (needle: string): Promise<void> => {
        while (!text.includes(needle)) {
          const { done, value } = await reader.read();
          if (done) throw new Error(`stream ended before "${needle}": ${text}`);
          text += Buffer.from(value).toString();
        }
      };
      await readUntil('event: subscribed');
      await relais.call('publish', { channel: 'mod:feed', data: { sse: 1 } });
      await readUntil('"sse":1');
      controller.abort();
      const subscribe = backend.received('/subscribe').find((r) => r.body['channel'] === 'mod:feed');
      expect(subscribe?.body).toMatchObject({ transport: 'sse', user: 'ivan', meta: { plan: 'pro' } });
      expect(backend.received('/connect').some((r) => r.body['transport'] === 'sse' && sessionUser(r) === 'ivan')).toBe(true);

      const refused = await fetch(`${relais.httpUrl}/sse?channel=mod:feed`, { signal: AbortSignal.timeout(5000) });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({ error: { code: 4401, message: 'no session' } });
      const secret = await fetch(`${relais.httpUrl}/sse?channel=mod:secret`, { headers: { cookie: 'session=ivan' }, signal: AbortSignal.timeout(5000) });
      expect(secret.status).toBe(403);
      expect(await secret.json()).toEqual({ error: { code: 4403, message: 'not for you' } });
      const glob = await fetch(`${relais.httpUrl}/sse?channel=mod:*`, { headers: { cookie: 'session=ivan' }, signal: AbortSignal.timeout(5000) });
      expect(glob.status).toBe(403);
    } finally {
      clearTimeout(deadline);
      controller.abort();
    }
  });

  it('refuses the SSE stream of a blocked user whom the connect proxy authenticated', async () => {
    await relais.call('block_user', { user: 'olga', expire_at: Math.floor(Date.now() / 1000) + 3600 });
    try {
      const refused = await fetch(`${relais.httpUrl}/sse?channel=mod:feed`, { headers: { cookie: 'session=olga' }, signal: AbortSignal.timeout(5000) });
      expect(refused.status).toBe(401);
      expect(await refused.json()).toMatchObject({ error: { code: 101, message: 'user blocked' } });
    } finally {
      await relais.call('unblock_user', { user: 'olga' });
    }
    // Unblocked, the stream opens; blocked again, the open stream ends with the reason.
    const controller = new AbortController();
    const deadline = setTimeout(() => controller.abort(), 10_000);
    try {
      const allowed = await fetch(`${relais.httpUrl}/sse?channel=mod:feed`, { headers: { cookie: 'session=olga' }, signal: controller.signal });
      expect(allowed.status).toBe(200);
      if (!allowed.body) throw new Error('no body');
      const reader: ReadableStreamDefaultReader<Uint8Array> = allowed.body.getReader();
      let text = '';
      const read = async (until: (t: string) => boolean): Promise<void> => {
        while (!until(text)) {
          const { done, value } = await reader.read();
          if (done) return;
          text += Buffer.from(value).toString();
        }
      };
      await read((t) => t.includes('event: subscribed'));
      await relais.call('block_user', { user: 'olga', expire_at: Math.floor(Date.now() / 1000) + 3600 });
      await read(() => false);
      expect(text).toContain('event: disconnect');
      expect(text).toContain('user blocked');
    } finally {
      clearTimeout(deadline);
      controller.abort();
      await relais.call('unblock_user', { user: 'olga' });
    }
  });

  it('counts proxy requests, failures and latency in the metrics', async () => {
    const text = await (await fetch(`${relais.httpUrl}/metrics`)).text();
    expect(text).toMatch(/relais_proxy_requests_total\{proxy="publish"\} \d+/);
    expect(text).toMatch(/relais_proxy_errors_total\{proxy="publish",reason="timeout"\} 1/);
    expect(text).toMatch(/relais_proxy_errors_total\{proxy="publish",reason="error"\} 1/);
    expect(text).toMatch(/relais_proxy_latency_ms_count\{proxy="connect"\} \d+/);
  });
});

describe('proxies with the backend down', () => {
  let relais: RelaisProcess;
  let deadUrl: string;

  beforeAll(async () => {
    // A port that was just listening and no longer is: connections are refused.
    const gone = await ProxyBackend.start();
    deadUrl = gone.url;
    await gone.close();
    relais = await startRelais({
      config: {
        proxy: {
          connect_url: `${deadUrl}/connect`,
          publish_url: `${deadUrl}/publish`,
          subscribe_url: `${deadUrl}/subscribe`,
          rpc_url: `${deadUrl}/rpc`,
          timeout: '1s',
          retries: 1,
        },
        namespaces: { mod: { proxy_publish: true }, gated: { proxy_subscribe: true } },
      },
    });
  });

  afterAll(async () => {
    await relais?.stop();
  });

  it('gives the SDK a temporary error at connect (it keeps retrying) and to the hooks of a client with a token; nothing is published', async () => {
    const c = connection(relais, 'session=alice');
    const errors: { code: number; temporary?: boolean; message: string }[] = [];
    c.centrifuge.on('error', (ctx) => errors.push(ctx.error));
    c.centrifuge.connect();
    await waitFor(() => errors.length >= 2, 5000, 'two connect errors');
    expect(errors[0]).toMatchObject({ code: 100, temporary: true });
    expect(errors[0]?.message).toMatch(/unreachable/);
    c.centrifuge.disconnect();

    const withToken = await sdkClient(relais, 'zoe');
    const sub = withToken.subscribe('mod:x');
    await sub.ready(5000);
    const failure = await sub.publish({ text: 'hi' }).then(
      () => undefined,
      (err: { code: number; temporary?: boolean; message: string }) => err,
    );
    expect(failure).toMatchObject({ code: 100, temporary: true });
    expect(failure?.message).toMatch(/unreachable/);
    await expect(withToken.centrifuge.rpc('anything', {})).rejects.toMatchObject({ code: 100, temporary: true });
    const gated = withToken.centrifuge.newSubscription('gated:x', { minResubscribeDelay: 100, maxResubscribeDelay: 200 });
    const subErrors: { code: number; temporary?: boolean }[] = [];
    gated.on('error', (ctx) => subErrors.push(ctx.error));
    gated.subscribe();
    // Temporary: the SDK keeps trying, the subscription never goes through.
    await waitFor(() => subErrors.length >= 2, 5000, 'two subscribe errors');
    expect(subErrors[0]).toMatchObject({ code: 100, temporary: true });
    expect(gated.state).toBe('subscribing');
    gated.unsubscribe();
    await sleep(300);
    expect(withToken.pubs('mod:x')).toEqual([]);
    withToken.close();
  });
});
