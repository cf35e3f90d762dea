/**
 * Named proxies per namespace (Centrifugo's `proxies` and `*_proxy_name`, docs/proxy.md): two
 * real HTTP backends, a real Relais process, the `centrifuge` SDK. Each namespace's hooks go to
 * its proxy only, with that proxy's headers; an unknown name stops Relais at start-up.
 */
import { Centrifuge, type PublicationContext } from 'centrifuge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/clients.js';
import { headerWebSocket, ProxyBackend } from './helpers/proxy_backend.js';
import { runRelaisToExit, startRelais, type RelaisProcess } from './helpers/relais.js';


describe('named proxies per namespace', () => {
  let main: ProxyBackend;
  let games: ProxyBackend;
  let relais: RelaisProcess;
  const open: Centrifuge[] = [];

  beforeAll(async () => {
    main = await ProxyBackend.start();
    games = await ProxyBackend.start();
    main.on('/connect', (r) => ({ answer: { result: { user: /session=([^;]+)/.exec(String(r.headers['cookie']))?.[1] ?? '' } } }));
    main.on('/subscribe', () => ({ answer: { result: { data: { from: 'main' } } } }));
    main.on('/publish', () => ({ answer: { result: { data: { from: 'main' } } } }));
    games.on('/subscribe', (r) => {
      if (String(r.body['channel']).endsWith(':closed')) return { answer: { error: { code: 4403, message: 'closed table' } } };
      return { answer: { result: { data: { from: 'games' } } } };
    });
    games.on('/publish', () => ({ answer: { result: { data: { from: 'games' } } } }));
    relais = await startRelais({
      config: {
        proxy: {
          connect_url: `${main.url}/connect`,
          subscribe_url: `${main.url}/subscribe`,
          publish_url: `${main.url}/publish`,
          http_headers: ['Cookie'],
          timeout: '2s',
        },
        proxies: [
          { name: 'games_sub', endpoint: `${games.url}/subscribe`, http_headers: ['X-Table'], static_http_headers: { 'X-Games-Secret': 's3' }, timeout: '2s' },
          { name: 'games_pub', endpoint: `${games.url}/publish`, timeout: '2s' },
        ],
        namespaces: {
          chat: { proxy_subscribe: true, proxy_publish: true },
          games: { proxy_subscribe: true, subscribe_proxy_name: 'games_sub', proxy_publish: true, publish_proxy_name: 'games_pub' },
        },
      },
    });
  });

  afterAll(async () => {
    for (const c of open) c.disconnect();
    await relais?.stop();
    await main?.close();
    await games?.close();
  });

  it('routes each namespace to its backend, with that proxy headers only; refusals come from the right one', async () => {
    const centrifuge = new Centrifuge(relais.wsUrl, { websocket: headerWebSocket({ cookie: 'session=alice', 'x-table': '12' }), timeout: 3000 });
    open.push(centrifuge);
    centrifuge.connect();
    await centrifuge.ready(5000);

    const data: Record<string, unknown> = {};
    const pubs: PublicationContext[] = [];
    for (const channel of ['chat:lobby', 'games:poker']) {
      const sub = centrifuge.newSubscription(channel);
      sub.on('subscribed', (ctx) => {
        data[channel] = ctx.data as unknown;
      });
      sub.on('publication', (ctx) => pubs.push(ctx));
      sub.subscribe();
      await sub.ready(5000);
    }
    expect(data).toEqual({ 'chat:lobby': { from: 'main' }, 'games:poker': { from: 'games' } });
    expect(main.received('/subscribe').map((r) => r.body['channel'])).toEqual(['chat:lobby']);
    const gameRequest = games.received('/subscribe')[0];
    expect(gameRequest?.body).toMatchObject({ channel: 'games:poker', user: 'alice' });
    expect(gameRequest?.headers).toMatchObject({ 'x-table': '12', 'x-games-secret': 's3' });
    expect(gameRequest?.headers['cookie']).toBeUndefined();
    expect(main.received('/subscribe')[0]?.headers['x-table']).toBeUndefined();

    await centrifuge.publish('games:poker', { bet: 5 });
    await centrifuge.publish('chat:lobby', { text: 'hi' });
    await waitFor(() => pubs.length === 2, 5000, 'both publications');
    expect(pubs.map((p): unknown[] => [p.channel, p.data as unknown])).toEqual([
      ['games:poker', { from: 'games' }],
      ['chat:lobby', { from: 'main' }],
    ]);
    expect(games.received('/publish').map((r) => r.body['channel'])).toEqual(['games:poker']);
    expect(main.received('/publish').map((r) => r.body['channel'])).toEqual(['chat:lobby']);

    const closed = centrifuge.newSubscription('games:closed');
    const unsubscribed = new Promise<{ code: number; reason: string }>((resolve) => closed.on('unsubscribed', resolve));
    closed.subscribe();
    expect(await unsubscribed).toMatchObject({ code: 4403, reason: 'closed table' });
  });

  it('refuses to start when a namespace names a proxy that is not defined, or a name without its hook', async () => {
    const exit = await runRelaisToExit({
      config: {
        proxies: [{ name: 'games_sub', endpoint: 'http://127.0.0.1:9/x' }],
        namespaces: {
          games: { proxy_subscribe: true, subscribe_proxy_name: 'nope' },
          chat: { publish_proxy_name: 'games_sub' },
        },
      },
    });
    expect(exit.code).not.toBe(0);
    expect(exit.output).toContain('namespaces.games: subscribe_proxy_name "nope" is not a proxy of `proxies` (games_sub)');
    expect(exit.output).toContain('namespaces.chat: publish_proxy_name needs proxy_publish: true');
  });
});
