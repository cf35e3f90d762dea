/**
 * The refresh proxy for SSE streams the connect proxy authenticated (docs/proxy.md): a real
 * Relais process, a real HTTP backend and a fetch stream of `GET /sse`. At the connect result's
 * `expire_at` the backend is asked: a new `expire_at` keeps the same stream open and delivering,
 * `expired` or a `disconnect` ends it with that event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyBackend } from './helpers/proxy_backend.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const inOneSecond = (): number => Math.floor(Date.now() / 1000) + 1;

/** Reads an SSE response until `until` holds or the stream ends; the whole read has a deadline. */
async function readStream(url: string, cookie: string, onText: (text: string) => Promise<void> | void, until: (text: string) => boolean, ms: number): Promise<{ text: string; ended: boolean }> {
  const controller = new AbortController();
  const deadline = setTimeout(() => controller.abort(), ms);
  let text = '';
  try {
    const response = await fetch(url, { headers: { cookie }, signal: controller.signal });
    expect(response.status).toBe(200);
    if (!response.body) throw new Error('no body');
    const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
    while (!until(text)) {
      const { done, value } = await reader.read();
      if (done) return { text, ended: true };
      text += Buffer.from(value).toString();
      await onText(text);
    }
    return { text, ended: false };
  } catch (err) {
    if (controller.signal.aborted) throw new Error(`stream read past its deadline: ${text}`);
    throw err;
  } finally {
    clearTimeout(deadline);
    controller.abort();
  }
}

describe('refresh proxy for SSE streams', () => {
  let backend: ProxyBackend;
  let relais: RelaisProcess;
  const refreshes = new Map<string, number>();

  beforeAll(async () => {
    backend = await ProxyBackend.start();
    backend.on('/connect', (r) => ({ answer: { result: { user: /session=([^;]+)/.exec(String(r.headers['cookie']))?.[1] ?? '', expire_at: inOneSecond() } } }));
    backend.on('/refresh', (r) => {
      const user = String(r.body['user']);
      const count = (refreshes.get(user) ?? 0) + 1;
      refreshes.set(user, count);
      if (user === 'kicked') return { answer: { disconnect: { code: 4501, reason: 'banned' } } };
      if (user === 'flaky' && count === 1) return { status: 500 };
      if (count <= 2) return { answer: { result: { expire_at: inOneSecond() } } };
      return { answer: { result: { expired: true } } };
    });
    relais = await startRelais({
      config: { proxy: { connect_url: `${backend.url}/connect`, refresh_url: `${backend.url}/refresh`, http_headers: ['Cookie'], timeout: '2s' } },
    });
  });

  afterAll(async () => {
    await relais?.stop();
    await backend?.close();
  });

  it('prolongs the stream past its expire_at while the backend answers a new one, delivering on it, then ends it when the backend says expired', async () => {
    // Publications all along (bounded): the same stream must keep delivering after each refresh.
    let n = 0;
    const publisher = setInterval(() => {
      if (n < 60) void relais.call('publish', { channel: 'feed', data: { n: ++n } }).catch(() => undefined);
    }, 200);
    let result;
    try {
      result = await readStream(`${relais.httpUrl}/sse?channel=feed`, 'session=paula', () => undefined, (t) => t.includes('event: expired'), 15_000);
    } finally {
      clearInterval(publisher);
    }
    expect(result.ended).toBe(false);
    expect(refreshes.get('paula')).toBe(3);
    const requests = backend.received('/refresh').filter((r) => r.body['user'] === 'paula');
    expect(requests[0]?.body).toMatchObject({ transport: 'sse', user: 'paula' });
    const times = [...result.text.matchAll(/"time":(\d+)/g)].map((m) => Number(m[1]));
    // Delivered after the second refresh prolonged it: past the connect result's expiry.
    expect(times.some((t) => t > (requests[1]?.at ?? Infinity))).toBe(true);
  });

  it('ends the stream with the backend disconnect, and asks again when the backend could not answer', async () => {
    const kicked = await readStream(`${relais.httpUrl}/sse?channel=feed`, 'session=kicked', () => undefined, (t) => t.includes('event: disconnect'), 10_000);
    expect(kicked.text).toContain('event: disconnect');
    expect(kicked.text).toContain('data: {"code":4501,"reason":"banned"}');

    const flaky = await readStream(`${relais.httpUrl}/sse?channel=feed`, 'session=flaky', () => undefined, (t) => t.includes('event: expired'), 20_000);
    // HTTP 500 first: the stream stayed open and was asked again 5 s later.
    expect(flaky.text).not.toContain('event: disconnect');
    expect(refreshes.get('flaky')).toBe(3);
  });
});
