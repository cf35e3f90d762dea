/**
 * Centrifugo's binary proxy encoding (docs/proxy.md, `binary_encoding`): the Protobuf build of
 * the `centrifuge` SDK sends payloads as bytes; the backend gets them as `b64data` and answers
 * `b64data` / `b64info`, decoded back to the bytes the clients receive. A real Relais process,
 * a real HTTP backend.
 */
import { Centrifuge, type PublicationContext } from 'centrifuge/build/protobuf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from './helpers/clients.js';
import { headerWebSocket, ProxyBackend } from './helpers/proxy_backend.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const utf8 = new TextEncoder();
const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');


describe('binary proxy encoding with the Protobuf SDK', () => {
  let backend: ProxyBackend;
  let relais: RelaisProcess;
  const open: Centrifuge[] = [];

  async function connect(user: string, data?: Uint8Array): Promise<{ centrifuge: Centrifuge; connectData: unknown }> {
    const centrifuge = new Centrifuge(relais.wsUrl, { websocket: headerWebSocket({ cookie: `session=${user}` }), timeout: 3000, ...(data ? { data } : {}) });
    open.push(centrifuge);
    const connected = new Promise<unknown>((resolve) => centrifuge.on('connected', (ctx) => resolve(ctx.data)));
    centrifuge.connect();
    return { centrifuge, connectData: await connected };
  }

  beforeAll(async () => {
    backend = await ProxyBackend.start();
    backend.on('/connect', (r) => ({
      answer: { result: { user: /session=([^;]+)/.exec(String(r.headers['cookie']))?.[1] ?? '', b64data: b64('{"welcome":true}') } },
    }));
    backend.on('/subscribe', () => ({ answer: { result: { b64info: b64('{"seat":7}'), b64data: b64('{"topic":"bin"}') } } }));
    backend.on('/publish', (r) => {
      const sent = JSON.parse(Buffer.from(String(r.body['b64data']), 'base64').toString('utf8')) as { mode?: string };
      if (sent.mode === 'garbage') return { answer: { result: { b64data: Buffer.from([0xff, 0xfe, 0x00]).toString('base64') } } };
      if (sent.mode === 'notbase64') return { answer: { result: { b64data: '***' } } };
      return { answer: { result: { b64data: b64('{"checked":true}') } } };
    });
    backend.on('/rpc', () => ({ answer: { result: { b64data: b64('{"pong":1}') } } }));
    relais = await startRelais({
      config: {
        proxy: {
          connect_url: `${backend.url}/connect`,
          subscribe_url: `${backend.url}/subscribe`,
          publish_url: `${backend.url}/publish`,
          rpc_url: `${backend.url}/rpc`,
          http_headers: ['Cookie'],
          binary_encoding: true,
          timeout: '2s',
        },
        namespaces: { bin: { proxy_subscribe: true, proxy_publish: true } },
      },
    });
  });

  afterAll(async () => {
    for (const c of open) c.disconnect();
    await relais?.stop();
    await backend?.close();
  });

  it('sends connect, subscribe and publish payloads as b64data of the client bytes, and hands b64data/b64info answers back as bytes', async () => {
    const connectBytes = utf8.encode('{"app":"v1"}');
    const { centrifuge: alice, connectData } = await connect('alice', connectBytes);
    expect(connectData).toEqual(utf8.encode('{"welcome":true}'));
    const connectRequest = backend.received('/connect').at(-1);
    expect(connectRequest?.body).toMatchObject({ protocol: 'protobuf', encoding: 'binary', b64data: Buffer.from(connectBytes).toString('base64') });
    expect(connectRequest?.body).not.toHaveProperty('data');

    const pubs: PublicationContext[] = [];
    const sub = alice.newSubscription('bin:room');
    sub.on('publication', (ctx) => pubs.push(ctx));
    const subscribed = new Promise<unknown>((resolve) => sub.on('subscribed', (ctx) => resolve(ctx.data)));
    sub.subscribe();
    expect(await subscribed).toEqual(utf8.encode('{"topic":"bin"}'));

    const { centrifuge: bob } = await connect('bob');
    const published = utf8.encode('{"text":"hi"}');
    await bob.publish('bin:room', published);
    const request = backend.received('/publish').at(-1);
    expect(request?.body).toMatchObject({ channel: 'bin:room', encoding: 'binary', b64data: Buffer.from(published).toString('base64') });
    await waitFor(() => pubs.length === 1, 5000, 'the publication');
    expect(pubs[0]?.data).toEqual(utf8.encode('{"checked":true}'));

    const rpc = await bob.rpc('ping', utf8.encode('{}'));
    expect(rpc.data).toEqual(utf8.encode('{"pong":1}'));
    expect(backend.received('/rpc').at(-1)?.body).toMatchObject({ method: 'ping', b64data: b64('{}') });
  });

  it('refuses b64data that is not base64, or not UTF-8 JSON, with a temporary error; nothing reaches the channel', async () => {
    const { centrifuge: carol } = await connect('carol');
    const pubs: PublicationContext[] = [];
    const sub = carol.newSubscription('bin:guarded');
    sub.on('publication', (ctx) => pubs.push(ctx));
    sub.subscribe();
    await sub.ready(5000);
    for (const mode of ['garbage', 'notbase64']) {
      const failure = await carol.publish('bin:guarded', utf8.encode(JSON.stringify({ mode }))).catch((e: unknown) => e);
      expect(failure).toMatchObject({ code: 100, temporary: true });
    }
    await carol.publish('bin:guarded', utf8.encode('{"mode":"fine"}'));
    await waitFor(() => pubs.length === 1, 5000, 'the allowed publication');
    await sleep(100);
    expect(pubs.map((p) => new TextDecoder().decode(p.data as Uint8Array))).toEqual(['{"checked":true}']);
  });
});
