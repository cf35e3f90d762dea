/**
 * Hostile input below the protocol: slowloris HTTP clients, header floods on the upgrade
 * request, invalid UTF-8, a frame just over the limit, a long-lived SSE stream outliving the
 * request timeout. Every time the server answers as documented and keeps serving others.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RawClient, sdkClient, waitFor } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

let relais: RelaisProcess;

beforeAll(async () => {
  relais = await startRelais({
    config: { http: { headers_timeout: '2s', request_timeout: '3s' }, client: { max_frame_bytes: 2048 }, sse: { heartbeat_interval: '1s' } },
  });
});

afterAll(async () => {
  await relais.stop();
});

function rawSocket(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(relais.port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** A publish/subscribe round trip through the server: it still serves. */
async function serves(): Promise<void> {
  const c = await sdkClient(relais, `probe-${Math.random()}`);
  const sub = c.subscribe('chat:probe');
  await sub.ready(5000);
  const before = c.pubs('chat:probe').length;
  await relais.call('publish', { channel: 'chat:probe', data: 1 });
  await waitFor(() => c.pubs('chat:probe').length === before + 1, 5000, 'probe publication');
  c.close();
}

describe('hostile HTTP and WebSocket input', () => {
  it('drops slowloris clients that trickle their headers, and keeps serving', async () => {
    const sockets = await Promise.all(Array.from({ length: 50 }, () => rawSocket()));
    const closed = sockets.map((s) => closedWithin(s, 8000));
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('X-Slow: a\r\n');
    }, 500);
    for (const s of sockets) s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await serves();
    const results = await Promise.all(closed);
    clearInterval(trickle);
    expect(results.every(Boolean)).toBe(true);
    await serves();
  });

  it('refuses a header flood on the upgrade request with 431', async () => {
    const socket = await rawSocket();
    const response = new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    const headers = Array.from({ length: 2000 }, (_, i) => `X-Flood-${i}: ${'v'.repeat(30)}\r\n`).join('');
    socket.write(
      `GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${headers}\r\n`,
    );
    expect(await response).toMatch(/^HTTP\/1\.1 431/);
    await serves();
  });

  it('closes a connection sending invalid UTF-8 with 1007, others unaffected', async () => {
    const raw = await RawClient.open(relais);
    await raw.connect(await relais.token('utf8'));
    raw.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    expect((await raw.closed()).code).toBe(1007);
    await serves();
  });

  it('accepts a frame of exactly the limit and closes one byte over with 1009', async () => {
    const token = await relais.token('edge');
    const command = (size: number): string => {
      const base = JSON.stringify({ id: 2, publish: { channel: 'chat:edge', data: '' } });
      return JSON.stringify({ id: 2, publish: { channel: 'chat:edge', data: 'x'.repeat(size - base.length) } });
    };
    const fits = await RawClient.open(relais);
    await fits.connect(token);
    fits.send(command(2048));
    expect((await fits.reply(2))['publish']).toEqual({});
    fits.close();
    const over = await RawClient.open(relais);
    await over.connect(token);
    over.send(command(2049));
    expect((await over.closed()).code).toBe(1009);
  });

  it('keeps an SSE stream open past the request timeout', async () => {
    const token = await relais.token('watcher');
    const controller = new AbortController();
    const response = await fetch(`${relais.httpUrl}/sse?channel=chat:long`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    expect(response.status).toBe(200);
    const reader = response.body?.getReader();
    let text = '';
    const reading = (async () => {
      for (;;) {
        const chunk = await reader?.read();
        if (!chunk || chunk.done) return;
        text += Buffer.from(chunk.value).toString();
      }
    })().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 4500));
    await relais.call('publish', { channel: 'chat:long', data: { late: true } });
    await waitFor(() => text.includes('"late":true'), 5000, 'publication after the request timeout');
    controller.abort();
    await reading;
  });

  it('refuses an upgrade on another path, and a WebSocket from a foreign origin when origins are set', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${relais.port}/elsewhere`);
    const status = await new Promise<number | undefined>((resolve) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode));
      ws.once('error', () => resolve(undefined));
    });
    expect(status).toBe(404);
    const guarded = await startRelais({ env: { CLIENT_URL: 'https://app.example' } });
    try {
      const foreign = new WebSocket(guarded.wsUrl, { headers: { origin: 'https://evil.example' } });
      const foreignStatus = await new Promise<number | undefined>((resolve) => {
        foreign.once('unexpected-response', (_req, res) => resolve(res.statusCode));
        foreign.once('error', () => resolve(undefined));
      });
      expect(foreignStatus).toBe(403);
      const allowed = await RawClient.open(guarded, { origin: 'https://app.example' });
      expect((await allowed.connect(await guarded.token('ok')))['connect']).toBeDefined();
      allowed.close();
    } finally {
      await guarded.stop();
    }
  });
});
