import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProxyCaller } from '../core/client_proxy.js';
import { DisconnectError, RelaisError } from '../core/errors.js';
import { toJsonText } from '../core/json.js';
import { createClientProxies } from './proxy.js';
import { ProxyStats, ProxyTransport } from './proxy_http.js';

interface Seen {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

const caller: ProxyCaller = {
  client: 'c1',
  transport: 'websocket',
  user: 'alice',
  headers: { cookie: 'session=a' },
  emulatedHeaders: { cookie: 'forged', authorization: 'Bearer x' },
  meta: toJsonText({ plan: 'pro' }),
};

describe('the proxy transport against a real HTTP server', () => {
  let server: Server;
  let base: string;
  const seen: Seen[] = [];
  /** Answers by path: a JSON text, or a status number, or 'slow'. */
  const answers = new Map<string, string | number>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
        const answer = answers.get(req.url ?? '') ?? '{"result":{}}';
        if (answer === 'slow') setTimeout(() => res.end('{"result":{}}'), 500);
        else if (typeof answer === 'number') res.writeHead(answer).end();
        else res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function transport(options: { timeoutMs?: number; retries?: number; includeMeta?: boolean } = {}): { t: ProxyTransport; stats: ProxyStats } {
    const stats = new ProxyStats();
    const t = new ProxyTransport({
      timeoutMs: options.timeoutMs ?? 1000,
      retries: options.retries ?? 0,
      staticHeaders: { 'X-Secret': 's', Cookie: 'static' },
      includeMeta: options.includeMeta ?? true,
      stats,
    });
    return { t, stats };
  }

  it('builds Centrifugo bodies with raw data and meta, and forwards headers by priority', async () => {
    const { t } = transport();
    const body = t.body(caller, { user: 'alice', channel: 'chat:1' }, { data: toJsonText({ text: 'hi' }) });
    expect(JSON.parse(body)).toEqual({
      client: 'c1',
      transport: 'websocket',
      protocol: 'json',
      encoding: 'json',
      user: 'alice',
      channel: 'chat:1',
      data: { text: 'hi' },
      meta: { plan: 'pro' },
    });
    expect(JSON.parse(transport({ includeMeta: false }).t.body(caller, {}))).not.toHaveProperty('meta');
    expect(JSON.parse(t.body(undefined, {}, { data: toJsonText(1) }))).toEqual({ data: 1 });
    await t.call('publish', `${base}/headers`, caller, body);
    const request = seen.find((s) => s.path === '/headers');
    expect(request?.headers['cookie']).toBe('session=a');
    expect(request?.headers['authorization']).toBe('Bearer x');
    expect(request?.headers['x-secret']).toBe('s');
    expect(request?.headers['content-type']).toBe('application/json');
  });

  it('turns error and disconnect answers into the client outcome, and bad shapes into a temporary error', async () => {
    const { t, stats } = transport();
    answers.set('/error', '{"error":{"code":4000,"message":"moderated"}}');
    answers.set('/disconnect', '{"disconnect":{"code":4501,"reason":"banned"}}');
    answers.set('/bad-code', '{"disconnect":{"code":3000,"reason":"x"}}');
    answers.set('/array', '[1]');
    answers.set('/text', 'not json');
    answers.set('/500', 500);
    const error = await t.call('publish', `${base}/error`, caller, '{}').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RelaisError);
    expect(error).toMatchObject({ code: 'PROXY_REFUSED', wireCode: 4000, message: 'moderated', temporary: false });
    const disconnect = await t.call('subscribe', `${base}/disconnect`, caller, '{}').catch((e: unknown) => e);
    expect(disconnect).toBeInstanceOf(DisconnectError);
    expect((disconnect as DisconnectError).disconnect).toEqual({ code: 4501, reason: 'banned' });
    for (const path of ['/bad-code', '/array', '/text', '/500']) {
      const failure = await t.call('connect', `${base}${path}`, caller, '{}').catch((e: unknown) => e);
      expect(failure, path).toMatchObject({ code: 'PROXY_UNAVAILABLE', wireCode: 100, temporary: true });
    }
    expect(stats.requests.get('publish')).toBe(1);
    expect(stats.failures.get('publish error')).toBe(1);
    expect(stats.failures.get('subscribe disconnect')).toBe(1);
    expect(stats.failures.get('connect bad_answer')).toBe(3);
    expect(stats.failures.get('connect http_status')).toBe(1);
  });

  it('gives up at the timeout with a temporary error', async () => {
    const { t, stats } = transport({ timeoutMs: 100 });
    answers.set('/slow', 'slow');
    const started = performance.now();
    const failure = await t.call('publish', `${base}/slow`, caller, '{}').catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(450);
    expect(failure).toMatchObject({ code: 'PROXY_UNAVAILABLE', temporary: true });
    expect((failure as Error).message).toMatch(/within 100 ms/);
    expect(stats.failures.get('publish timeout')).toBe(1);
  });

  it('retries a refused connection, and reports it unreachable after the retries', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const dead = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { t, stats } = transport({ retries: 2 });
    const failure = await t.call('connect', `${dead}/connect`, caller, '{}').catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'PROXY_UNAVAILABLE', temporary: true });
    expect((failure as Error).message).toMatch(/unreachable/);
    expect(stats.failures.get('connect unreachable')).toBe(1);
  });

  it('parses the results of each hook', async () => {
    const { t } = transport();
    const proxies = createClientProxies(
      {
        connect_url: `${base}/p/connect`,
        refresh_url: `${base}/p/refresh`,
        subscribe_url: `${base}/p/subscribe`,
        sub_refresh_url: `${base}/p/sub_refresh`,
        publish_url: `${base}/p/publish`,
        timeout: 1000,
        retries: 0,
        http_headers: ['Cookie'],
        emulated_headers: [],
        static_headers: {},
        include_connection_meta: false,
        binary_encoding: false,
        rpc_namespaces: {},
      },
      t,
    );
    answers.set(
      '/p/connect',
      JSON.stringify({ result: { user: '56', expire_at: 2_000_000_000, info: { a: 1 }, data: { b: 2 }, channels: ['news'], subs: { 'user:56': { info: { c: 3 }, data: { d: 4 } } }, meta: { e: 5 } } }),
    );
    answers.set('/p/refresh', JSON.stringify({ result: { expired: true } }));
    answers.set('/p/subscribe', JSON.stringify({ result: { info: { seat: 1 }, data: { hello: true }, expire_at: 2_000_000_001 } }));
    answers.set('/p/sub_refresh', JSON.stringify({ result: { expire_at: 2_000_000_002 } }));
    answers.set('/p/publish', JSON.stringify({ result: { data: { clean: true }, skip_history: true, tags: { checked: 'yes' } } }));
    expect(proxies?.httpHeaders).toEqual(['cookie']);
    expect(await proxies?.connect?.(caller, { name: 'js', data: toJsonText({ x: 1 }) })).toEqual({
      user: '56',
      expiresAt: 2_000_000_000_000,
      info: '{"a":1}',
      data: '{"b":2}',
      channels: ['news'],
      subs: { 'user:56': { info: '{"c":3}', data: '{"d":4}' } },
      meta: '{"e":5}',
    });
    const connectBody = JSON.parse(seen.find((s) => s.path === '/p/connect')?.body ?? '{}') as Record<string, unknown>;
    expect(connectBody).toEqual({ client: 'c1', transport: 'websocket', protocol: 'json', encoding: 'json', name: 'js', data: { x: 1 } });
    expect(await proxies?.refresh?.(caller)).toEqual({ expired: true });
    expect(await proxies?.subscribe?.(caller, 'chat:1', undefined)).toEqual({ info: '{"seat":1}', data: '{"hello":true}', expiresAt: 2_000_000_001_000 });
    expect(await proxies?.subRefresh?.(caller, 'chat:1')).toEqual({ expired: false, expiresAt: 2_000_000_002_000 });
    expect(await proxies?.publish?.(caller, 'chat:1', toJsonText({ text: 'x' }))).toEqual({ data: '{"clean":true}', skipHistory: true, tags: { checked: 'yes' } });
    answers.set('/p/connect', JSON.stringify({ result: { user: 5 } }));
    await expect(proxies?.connect?.(caller, {})).rejects.toMatchObject({ code: 'PROXY_UNAVAILABLE' });
    answers.set('/p/connect', JSON.stringify({ result: {} }));
    expect(await proxies?.connect?.(caller, {})).toEqual({ user: '', channels: [], subs: {} });
  });
});
