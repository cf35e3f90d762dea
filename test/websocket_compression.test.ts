/**
 * permessage-deflate on the WebSocket endpoint: off by default; on with `websocket.compression`,
 * a client that offers it gets compressed frames above the threshold, in order with the
 * uncompressed ones, and the SDK (JSON and Protobuf) works unchanged.
 */
import type { ClientRequestArgs } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { sdkClient, waitFor, type SdkClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';
import { NEWEST_PROTOBUF_SDK, NEWEST_SDK } from './helpers/sdk_versions.js';

/** A raw client that offers permessage-deflate, with the bytes its socket read. */
async function openClient(relais: RelaisProcess): Promise<{ ws: WebSocket; socket: () => Socket; messages: string[] }> {
  let socket: Socket | undefined;
  const ws = new WebSocket(relais.wsUrl, {
    perMessageDeflate: true,
    createConnection: (options: ClientRequestArgs) => {
      socket = connect({ port: Number(options.port), host: options.hostname ?? options.host ?? '127.0.0.1' });
      return socket;
    },
  });
  const messages: string[] = [];
  ws.on('message', (data: Buffer) => messages.push(data.toString()));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ id: 1, connect: { token: await relais.token('zip') } }));
  ws.send(JSON.stringify({ id: 2, subscribe: { channel: 'chat:zip' } }));
  await waitFor(() => messages.some((m) => m.includes('"id":2')), 5000, 'subscribed');
  return { ws, socket: () => socket as Socket, messages };
}

/** Publishes a compressible payload of about `bytes` bytes and returns the socket bytes it took to arrive. */
async function bytesFor(relais: RelaisProcess, client: Awaited<ReturnType<typeof openClient>>, bytes: number): Promise<number> {
  const before = client.socket().bytesRead;
  const count = client.messages.length;
  await relais.call('publish', { channel: 'chat:zip', data: { text: 'relais '.repeat(Math.ceil(bytes / 7)) } });
  await waitFor(() => client.messages.length > count, 5000, 'publication');
  return client.socket().bytesRead - before;
}

describe.each([
  { compression: false, label: 'off (default)' },
  { compression: true, label: 'on' },
])('WebSocket compression $label', ({ compression }) => {
  let relais: RelaisProcess;
  const clients: SdkClient[] = [];

  beforeAll(async () => {
    relais = await startRelais({ ...(compression ? { env: { RELAIS_WS_COMPRESSION: 'true' } } : {}) });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await relais.stop();
  });

  it(compression ? 'negotiates permessage-deflate and compresses large messages only' : 'negotiates no extension and sends frames whole', async () => {
    const client = await openClient(relais);
    expect(client.ws.extensions).toBe(compression ? 'permessage-deflate' : '');
    const large = await bytesFor(relais, client, 20_000);
    const small = await bytesFor(relais, client, 200);
    if (compression) {
      expect(large).toBeLessThan(2_000);
      // Under the 1024-byte threshold: sent as is.
      expect(small).toBeGreaterThan(200);
    } else {
      expect(large).toBeGreaterThan(20_000);
    }
    const last = JSON.parse(client.messages.at(-1) ?? '{}') as { push?: { pub?: { data?: { text?: string } } } };
    expect(last.push?.pub?.data?.text?.length).toBeGreaterThan(190);
    client.ws.close();
  });

  it.each([
    { sdk: NEWEST_SDK, protocol: 'JSON' },
    { sdk: NEWEST_PROTOBUF_SDK, protocol: 'Protobuf' },
  ])('delivers large and small publications to the SDK ($protocol) in order', async ({ sdk }) => {
    const c = await sdkClient(relais, 'reader', { sdk });
    clients.push(c);
    const channel = `chat:order-${sdk === NEWEST_SDK ? 'json' : 'protobuf'}`;
    const sub = c.subscribe(channel);
    await sub.ready(5000);
    const publishes: Promise<unknown>[] = [];
    for (let n = 1; n <= 200; n++) {
      // Every third one above the threshold: compressed and plain frames interleave.
      publishes.push(relais.call('publish', { channel, data: { n, pad: n % 3 === 0 ? 'x'.repeat(3000) : '' } }));
      if (n % 20 === 0) await Promise.all(publishes.splice(0));
    }
    await Promise.all(publishes);
    await waitFor(() => c.pubs(channel).length === 200, 10_000, 'all 200 publications');
    const offsets = c.pubs(channel).map((p) => p.offset);
    expect(offsets).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });
});
