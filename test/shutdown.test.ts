/**
 * Graceful shutdown on SIGTERM: clients are told to reconnect elsewhere (3001), what was
 * acknowledged before is flushed to them first, SSE streams end, the process exits 0.
 */
import { Centrifuge } from 'centrifuge';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RawClient, waitFor } from './helpers/clients.js';
import { startRelais } from './helpers/relais.js';

describe('graceful shutdown', () => {
  it('flushes acknowledged publications, then disconnects with 3001 so that clients reconnect', async () => {
    const relais = await startRelais();
    const raw = await RawClient.open(relais);
    await raw.connect(await relais.token('listener'));
    raw.sendCommands({ id: 2, subscribe: { channel: 'chat:last-words' } });
    await raw.reply(2);

    const sdk = new Centrifuge(relais.wsUrl, { websocket: WebSocket, token: await relais.token('sdk'), minReconnectDelay: 60_000 });
    const states: string[] = [];
    sdk.on('state', (ctx) => states.push(ctx.newState));
    let disconnectCode: number | undefined;
    sdk.connect();
    await sdk.ready(5000);
    sdk.on('connecting', (ctx) => (disconnectCode ??= ctx.code));

    const sse = await fetch(`${relais.httpUrl}/sse?channel=chat:last-words`, { headers: { authorization: `Bearer ${await relais.token('sse')}` } });
    const sseText = sse.text();

    const acknowledged: number[] = [];
    for (let n = 1; n <= 50; n++) {
      await relais.call('publish', { channel: 'chat:last-words', data: { n } });
      acknowledged.push(n);
    }
    const exitCode = await relais.stop();

    expect(exitCode).toBe(0);
    const closed = await raw.closed();
    expect(closed).toEqual({ code: 3001, reason: 'shutdown' });
    expect(raw.pushes('pub', 'chat:last-words').map((p) => (p['pub'] as { data: { n: number } }).data.n)).toEqual(acknowledged);
    await waitFor(() => disconnectCode !== undefined, 5000, 'SDK told to reconnect');
    expect(disconnectCode).toBe(3001);
    expect(states).toContain('connecting');
    const text = await sseText;
    expect(text.split('\n').filter((l) => l.startsWith('data: ') && l.includes('"data":{"n":')).length).toBe(50);
    sdk.disconnect();
  });
});
