/**
 * Backpressure: one client that never reads and 200 that do. The slow one is subscribed to
 * the readers' channel and to a channel of large publications that fills its queue; it is
 * disconnected as slow, the 200 lose nothing, their p99 latency stays within 2x of the run
 * without it, and the server's memory stays bounded.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { waitFor } from './helpers/clients.js';
import { sample, scrape } from './helpers/metrics.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const READERS = 200;
const RATE = 50;
const PHASE_MS = 4000;

let relais: RelaisProcess;

/** A lean reader: counts publications of one channel and their latency from the `ts` in the payload. */
class Reader {
  readonly offsets: number[] = [];
  readonly latencies: number[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      for (const line of data.toString().split('\n')) {
        const msg = JSON.parse(line) as { push?: { pub?: { offset: number; data: { ts: number } } } };
        const pub = msg.push?.pub;
        if (!pub) continue;
        this.offsets.push(pub.offset);
        this.latencies.push(Date.now() - pub.data.ts);
      }
    });
  }
}

async function open(token: string, channels: string[]): Promise<WebSocket> {
  const ws = new WebSocket(relais.wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const subscribed = new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer) => {
      if (data.toString().includes(`"id":${channels.length + 1},`)) resolve();
    });
  });
  ws.send([{ id: 1, connect: { token } }, ...channels.map((channel, i) => ({ id: i + 2, subscribe: { channel } }))].map((c) => JSON.stringify(c)).join('\n'));
  await subscribed;
  return ws;
}

function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) * 1024;
}

function p99(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0;
}

async function publishFor(ms: number, channel: string, extra?: () => Promise<void>): Promise<number> {
  let sent = 0;
  const start = Date.now();
  while (Date.now() - start < ms) {
    await relais.call('publish', { channel, data: { ts: Date.now(), pad: 'x'.repeat(100) } });
    sent++;
    if (extra) await extra();
    const due = start + (sent * 1000) / RATE;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
  }
  return sent;
}

beforeAll(async () => {
  relais = await startRelais({
    config: {
      client: { max_queue_bytes: 262_144 },
      namespaces: {
        live: { history_size: 1000, history_ttl: '10m', allow_subscribe: 'authenticated' },
        bulk: { allow_subscribe: 'authenticated' },
      },
    },
  });
});

afterAll(async () => {
  await relais.stop();
});

describe('a client that stops reading', () => {
  it('is disconnected as slow without hurting the 200 that read', async () => {
    const readers: Reader[] = [];
    for (let i = 0; i < READERS; i++) readers.push(new Reader(await open(await relais.token(`reader-${i}`), ['live:feed'])));

    // Phase A: the readers alone.
    const sentA = await publishFor(PHASE_MS, 'live:feed');
    await waitFor(() => readers.every((r) => r.offsets.length === sentA), 10_000, 'phase A delivered');
    const latencyA = p99(readers.flatMap((r) => r.latencies));
    const rssA = rss(relais.child.pid ?? 0);
    for (const r of readers) r.latencies.length = 0;

    // Phase B: a client that never reads, also fed 60 KB publications on its own channel.
    const slow = await open(await relais.token('slowpoke'), ['live:feed', 'bulk:firehose']);
    slow.pause();
    const big = 'y'.repeat(60_000);
    let bulkSent = 0;
    const sentB = await publishFor(PHASE_MS, 'live:feed', async () => {
      for (let i = 0; i < 3; i++, bulkSent++) await relais.call('publish', { channel: 'bulk:firehose', data: { ts: Date.now(), big } });
    });
    await waitFor(() => readers.every((r) => r.offsets.length === sentA + sentB), 10_000, 'phase B delivered');
    const latencyB = p99(readers.flatMap((r) => r.latencies));
    const rssB = rss(relais.child.pid ?? 0);

    const metrics = await scrape(relais);
    expect(sample(metrics, 'relais_slow_consumer_disconnects_total')).toBe(1);
    expect(sample(metrics, 'websocket_disconnections_total', { reason: 'slow' })).toBe(1);
    // The 200 lost nothing: every offset once, in order.
    for (const r of readers) expect(r.offsets).toEqual(Array.from({ length: sentA + sentB }, (_, i) => i + 1));
    // Their p99 stays within 2x of the run without the slow client (10 ms floor: timer resolution on a shared machine).
    expect(latencyB).toBeLessThanOrEqual(2 * Math.max(latencyA, 10));
    // The slow client's backlog (bulkSent x 60 KB, several MB) did not pile up in the server.
    expect(bulkSent * 60_000).toBeGreaterThan(4_000_000);
    expect(rssB - rssA).toBeLessThan(64 * 1024 * 1024);
    console.log(`slow consumer: p99 ${latencyA} ms alone, ${latencyB} ms with the slow client; RSS +${Math.round((rssB - rssA) / 1048576)} MiB`);

    slow.terminate();
    for (const r of readers) r.ws.terminate();
  }, 60_000);
});
