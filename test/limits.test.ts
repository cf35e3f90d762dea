/** Documented limits, each against a real server: connections and SSE streams per user, namespace publish rate. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

let relais: RelaisProcess;

beforeAll(async () => {
  relais = await startRelais({
    config: {
      client: { max_connections_per_user: 2 },
      sse: { max_streams_per_user: 2 },
      rate_limit: { api: { burst: 3, per_second: 0.5 } },
      namespaces: { slow: { allow_publish: 'authenticated', rate_limit: { burst: 2, per_second: 0.5 } } },
    },
  });
});

afterAll(async () => {
  await relais.stop();
});

describe('limits', () => {
  it('refuses a user third connection with disconnect 3504, and accepts it again once one closed', async () => {
    const token = await relais.token('busy');
    const first = await RawClient.open(relais);
    const second = await RawClient.open(relais);
    expect((await first.connect(token))['connect']).toBeDefined();
    expect((await second.connect(token))['connect']).toBeDefined();
    const third = await RawClient.open(relais);
    third.sendCommands({ id: 1, connect: { token } });
    expect(await third.closed()).toEqual({ code: 3504, reason: 'connection limit' });
    first.close();
    await first.closed();
    await new Promise((r) => setTimeout(r, 100));
    const fourth = await RawClient.open(relais);
    expect((await fourth.connect(token))['connect']).toBeDefined();
    second.close();
    fourth.close();
  });

  it('refuses a user third SSE stream with 429, and accepts it again once one closed', async () => {
    const token = await relais.token('watcher');
    const open = (): { controller: AbortController; response: Promise<Response> } => {
      const controller = new AbortController();
      return {
        controller,
        response: fetch(`${relais.httpUrl}/sse?channel=chat:lim`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal }),
      };
    };
    const a = open();
    const b = open();
    expect((await a.response).status).toBe(200);
    expect((await b.response).status).toBe(200);
    const c = open();
    const refused = await c.response;
    expect(refused.status).toBe(429);
    expect(((await refused.json()) as { error: { code: number } }).error.code).toBe(111);
    a.controller.abort();
    await new Promise((r) => setTimeout(r, 200));
    const d = open();
    expect((await d.response).status).toBe(200);
    b.controller.abort();
    d.controller.abort();
  });

  it('limits server API requests per key when configured: 429, code 111', async () => {
    const replies = [];
    for (let i = 0; i < 5; i++) replies.push(await relais.api('publish', { channel: 'chat:api-rl', data: i }));
    expect(replies.filter((r) => r.status === 200).length).toBe(3);
    const refused = replies.filter((r) => r.status === 429);
    expect(refused.length).toBe(2);
    expect(refused[0]?.body.error).toMatchObject({ code: 111, temporary: true });
  });

  it('limits publishing into a namespace with its own rate limit', async () => {
    const raw = await RawClient.open(relais);
    await raw.connect(await relais.token('chatty'));
    raw.sendCommands(...[2, 3, 4].map((id) => ({ id, publish: { channel: 'slow:room', data: id } })));
    expect((await raw.reply(2))['publish']).toEqual({});
    expect((await raw.reply(3))['publish']).toEqual({});
    expect((await raw.reply(4))['error']).toMatchObject({ code: 111, temporary: true });
    raw.close();
  });
});
