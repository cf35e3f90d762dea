/**
 * Bidirectional emulation at the wire, against a real Relais process: the stream request's
 * connect command, the session and node ids of the connect reply, commands through
 * `/emulation`, the disconnect push that ends a stream, and what bad input gets (a
 * documented error, never a crash). The SDK suite runs the full client over these transports.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/clients.js';
import { sample, scrape } from './helpers/metrics.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

/** A streamed response read message by message: lines (http_stream) or `data:` fields (sse). */
class StreamReader {
  readonly messages: Record<string, unknown>[] = [];
  ended = false;
  private buffer = '';

  constructor(
    readonly response: Response,
    private readonly sse: boolean,
  ) {
    void this.pump();
  }

  private async pump(): Promise<void> {
    const reader = (this.response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.buffer += decoder.decode(value, { stream: true });
        this.parse();
      }
    } catch {
      // Aborted by the test.
    }
    this.ended = true;
  }

  private parse(): void {
    const separator = this.sse ? '\n\n' : '\n';
    let at: number;
    while ((at = this.buffer.indexOf(separator)) >= 0) {
      const block = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + separator.length);
      const text = this.sse ? block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n') : block;
      if (text.trim() !== '') this.messages.push(JSON.parse(text) as Record<string, unknown>);
    }
  }

  async reply(id: number): Promise<Record<string, unknown>> {
    await waitFor(() => this.messages.some((m) => m['id'] === id), 5000, `reply ${id}`);
    return this.messages.find((m) => m['id'] === id) as Record<string, unknown>;
  }
}

describe('bidirectional emulation (HTTP-streaming, SSE)', () => {
  let relais: RelaisProcess;
  const aborts: AbortController[] = [];

  beforeAll(async () => {
    relais = await startRelais({ config: { allowed_origins: ['https://app.example'] } });
  });

  afterAll(async () => {
    for (const a of aborts) a.abort();
    await relais.stop();
  });

  async function openStream(kind: 'http_stream' | 'sse', connect: string, headers: Record<string, string> = {}): Promise<StreamReader> {
    const abort = new AbortController();
    aborts.push(abort);
    const response =
      kind === 'http_stream'
        ? await fetch(`${relais.httpUrl}/connection/http_stream`, { method: 'POST', body: connect, headers: { 'content-type': 'application/json', ...headers }, signal: abort.signal })
        : await fetch(`${relais.httpUrl}/connection/sse?cf_connect=${encodeURIComponent(connect)}`, { headers, signal: abort.signal });
    return new StreamReader(response, kind === 'sse');
  }

  function emulate(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${relais.httpUrl}/emulation`, {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': 'application/json', ...headers },
      signal: AbortSignal.timeout(5000),
    });
  }

  for (const kind of ['http_stream', 'sse'] as const) {
    it(`${kind}: connects from the stream request, takes commands through /emulation, ends with a disconnect push`, async () => {
      const token = await relais.token(`emu-${kind}`);
      const stream = await openStream(kind, JSON.stringify({ id: 1, connect: { token } }));
      expect(stream.response.status).toBe(200);
      expect(stream.response.headers.get('content-type')).toContain(kind === 'sse' ? 'text/event-stream' : 'application/json');
      const connected = (await stream.reply(1))['connect'] as { client: string; session: string; node: string };
      expect(typeof connected.session).toBe('string');
      expect(connected.session).not.toBe(connected.client);
      expect(typeof connected.node).toBe('string');

      const channel = `chat:emu-${kind}`;
      const sent = await emulate({ session: connected.session, node: connected.node, data: [{ id: 2, subscribe: { channel } }, { id: 3, publish: { channel, data: { n: 1 } } }].map((c) => JSON.stringify(c)).join('\n') });
      expect(sent.status).toBe(204);
      expect((await stream.reply(2))['subscribe']).toBeDefined();
      expect(await stream.reply(3)).toEqual({ id: 3, publish: {} });
      await waitFor(() => stream.messages.some((m) => (m['push'] as { pub?: unknown } | undefined)?.pub !== undefined), 5000, 'publication push');

      await relais.call('disconnect', { user: `emu-${kind}`, disconnect: { code: 3011, reason: 'force reconnect' } });
      await waitFor(() => stream.ended, 5000, 'stream end');
      expect(stream.messages.at(-1)).toEqual({ push: { disconnect: { code: 3011, reason: 'force reconnect' } } });

      // The session is gone: 204 as Centrifugo answers (the client already saw its stream end).
      expect((await emulate({ session: connected.session, node: connected.node, data: '{"id":4,"ping":{}}' })).status).toBe(204);
    });
  }

  it('refuses bad emulation requests with documented errors and keeps serving', async () => {
    const notJson = await emulate('{not json');
    expect(notJson.status).toBe(400);
    expect(((await notJson.json()) as { error: { code: number } }).error.code).toBe(107);
    expect((await emulate({ session: 1, node: 'x', data: '' })).status).toBe(400);
    expect((await emulate([1, 2])).status).toBe(400);

    const unknownNode = await emulate({ session: 's', node: 'no-such-node', data: '{}' });
    expect(unknownNode.status).toBe(404);
    expect(((await unknownNode.json()) as { error: { message: string } }).error.message).toContain('no live node');

    const tooLarge = await emulate({ session: 's', node: 'n', data: 'x'.repeat(70_000) });
    expect(tooLarge.status).toBe(413);

    const protobuf = await emulate({ session: 's', node: 'n', data: '{}' }, { 'content-type': 'application/octet-stream' });
    expect(protobuf.status).toBe(400);
    expect(((await protobuf.json()) as { error: { message: string } }).error.message).toContain('WebSocket only');

    const foreign = await emulate({ session: 's', node: 'n', data: '{}' }, { origin: 'https://evil.example' });
    expect(foreign.status).toBe(403);

    expect((await fetch(`${relais.httpUrl}/healthz`)).status).toBe(200);
  });

  it('refuses stream requests without a connect command or from a foreign origin; a malformed one ends with a bad request disconnect', async () => {
    const empty = await fetch(`${relais.httpUrl}/connection/http_stream`, { method: 'POST', body: '' });
    expect(empty.status).toBe(400);
    expect((await fetch(`${relais.httpUrl}/connection/sse`)).status).toBe(400);
    const foreign = await fetch(`${relais.httpUrl}/connection/sse?cf_connect=%7B%7D`, { headers: { origin: 'https://evil.example' } });
    expect(foreign.status).toBe(403);

    const malformed = await openStream('http_stream', '{"id":1,"connect":');
    await waitFor(() => malformed.ended, 5000, 'stream end');
    expect(malformed.messages).toEqual([{ push: { disconnect: { code: 3501, reason: 'bad request' } } }]);
  });

  it('answers CORS preflights and echoes an allowed origin', async () => {
    const preflight = await fetch(`${relais.httpUrl}/emulation`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');

    const token = await relais.token('cors');
    const stream = await openStream('http_stream', JSON.stringify({ id: 1, connect: { token } }), { origin: 'https://app.example' });
    expect(stream.response.headers.get('access-control-allow-origin')).toBe('https://app.example');
    await stream.reply(1);
  });
});

describe('bidirectional emulation turned off', () => {
  let relais: RelaisProcess;

  beforeAll(async () => {
    relais = await startRelais({ config: { emulation: { http_stream: false, sse: false } } });
  });

  afterAll(async () => {
    await relais.stop();
  });

  it('serves neither stream nor /emulation (404 METHOD_NOT_FOUND)', async () => {
    const stream = await fetch(`${relais.httpUrl}/connection/http_stream`, { method: 'POST', body: '{"id":1,"connect":{}}' });
    expect(stream.status).toBe(404);
    expect((await fetch(`${relais.httpUrl}/connection/sse?cf_connect=%7B%7D`)).status).toBe(404);
    const emulation = await fetch(`${relais.httpUrl}/emulation`, { method: 'POST', body: '{}' });
    expect(emulation.status).toBe(404);
    expect(((await emulation.json()) as { error: { code: number } }).error.code).toBe(104);
  });
});

describe('bidirectional emulation with a reader that stops reading', () => {
  let relais: RelaisProcess;

  beforeAll(async () => {
    relais = await startRelais({ config: { client: { max_queue_bytes: 262_144 }, namespaces: { bulk: { allow_subscribe: 'authenticated' } } } });
  });

  afterAll(async () => {
    await relais.stop();
  });

  it('cuts the stream as slow once its backlog passes client.max_queue_bytes, and keeps serving', async () => {
    const token = await relais.token('slow-stream');
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${relais.httpUrl}/connection/http_stream`, { method: 'POST', headers: { 'content-type': 'application/json' } }, resolve);
      req.once('error', reject);
      req.end(JSON.stringify({ id: 1, connect: { token } }));
    });
    let head = '';
    const connected = await new Promise<{ session: string; node: string }>((resolve) => {
      response.on('data', (chunk: Buffer) => {
        head += chunk.toString();
        const line = head.split('\n')[0] ?? '';
        if (head.includes('\n')) {
          response.removeAllListeners('data');
          response.pause();
          resolve((JSON.parse(line) as { connect: { session: string; node: string } }).connect);
        }
      });
    });
    const ended = new Promise<void>((resolve) => response.socket.once('close', () => resolve()));
    const subscribe = await fetch(`${relais.httpUrl}/emulation`, {
      method: 'POST',
      body: JSON.stringify({ ...connected, data: JSON.stringify({ id: 2, subscribe: { channel: 'bulk:firehose' } }) }),
    });
    expect(subscribe.status).toBe(204);
    // Bounded: at most 400 publications of 60 KB (24 MB), far past the queue bound and the socket buffers.
    let cut = false;
    for (let n = 0; n < 400 && !cut; n++) {
      await relais.call('publish', { channel: 'bulk:firehose', data: { n, pad: 'x'.repeat(60_000) } });
      if (n % 20 === 19) cut = sample(await scrape(relais), 'relais_slow_consumer_disconnects_total') === 1;
    }
    expect(sample(await scrape(relais), 'relais_slow_consumer_disconnects_total')).toBe(1);
    response.resume();
    await ended;
    expect((await fetch(`${relais.httpUrl}/healthz`)).status).toBe(200);
  });
});
