import { createServer, type Server } from 'node:http';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebhookSender, webhookSignature, type WebhookSenderOptions } from './webhook_sender.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

/** A backend answering each request with the next status of `statuses` (the last one repeats). */
async function backend(statuses: number[]): Promise<{ url: string; bodies: string[]; signatures: string[]; deliveries: string[] }> {
  const seen = { bodies: [] as string[], signatures: [] as string[], deliveries: [] as string[] };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.bodies.push(Buffer.concat(chunks).toString());
      seen.signatures.push(String(req.headers['x-relais-signature']));
      seen.deliveries.push(String(req.headers['x-relais-delivery']));
      res.writeHead(statuses.length > 1 ? (statuses.shift() as number) : (statuses[0] ?? 200)).end();
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`, ...seen };
}

function sender(url: string, options: Partial<WebhookSenderOptions> = {}): WebhookSender {
  return new WebhookSender({
    url,
    secret: 'a-secret-of-sixteen+',
    batchSize: 10,
    batchWaitMs: 5,
    queueSize: 100,
    timeoutMs: 1000,
    maxAttempts: 4,
    backoffMinMs: 10,
    backoffMaxMs: 40,
    logger: pino({ level: 'silent' }),
    ...options,
  });
}

const event = (n: number) => ({ type: 'connection_closed', time: n, node: 'n1', client: `c${n}` });

describe('WebhookSender', () => {
  it('batches in order, signs each body, and retries a failed batch under the same delivery id', async () => {
    const hook = await backend([503, 500, 204]);
    const s = sender(hook.url);
    for (let n = 0; n < 25; n++) s.enqueue(event(n));
    await s.close(5000);
    expect(s.counts).toEqual({ sent: 25, failed: 0, dropped: 0 });
    const delivered = hook.bodies.slice(2).flatMap((b) => (JSON.parse(b) as { events: { time: number }[] }).events.map((e) => e.time));
    expect(delivered).toEqual(Array.from({ length: 25 }, (_, n) => n));
    hook.bodies.forEach((body, i) => expect(hook.signatures[i]).toBe(webhookSignature('a-secret-of-sixteen+', body)));
    expect(new Set(hook.deliveries.slice(0, 3)).size).toBe(1);
  });

  it('counts a batch failed after its attempts or a 4xx refusal, and drops what overflows the queue', async () => {
    const down = await backend([503]);
    const s = sender(down.url, { queueSize: 5 });
    for (let n = 0; n < 8; n++) s.enqueue(event(n));
    await s.close(5000);
    expect(s.counts).toEqual({ sent: 0, failed: 5, dropped: 3 });
    expect(down.bodies.length).toBe(4);

    const refusing = await backend([400]);
    const r = sender(refusing.url);
    r.enqueue(event(1));
    await r.close(5000);
    expect(r.counts).toEqual({ sent: 0, failed: 1, dropped: 0 });
    expect(refusing.bodies.length).toBe(1);
  });
});
