/**
 * `/metrics` parsed by a Prometheus text-format parser: every metric of seed 000 and issue 4
 * is present, and moves when it should.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, sdkClient, waitFor } from './helpers/clients.js';
import { sample, scrape } from './helpers/metrics.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

let relais: RelaisProcess;

beforeAll(async () => {
  // User statuses publish on every connect: off, so that the publishes counted are the test's own.
  relais = await startRelais({ config: { rate_limit: { connection: { burst: 5, per_second: 1 }, disconnect_after: 1000 }, chat: { status: false } } });
});

afterAll(async () => {
  await relais.stop();
});

describe('Prometheus metrics', () => {
  it('exposes every metric, with its type', async () => {
    const families = await scrape(relais);
    const expected: Record<string, string> = {
      websocket_active_connections: 'GAUGE',
      websocket_messages_total: 'COUNTER',
      websocket_message_latency_ms: 'HISTOGRAM',
      websocket_disconnections_total: 'COUNTER',
      relais_publish_latency_ms: 'HISTOGRAM',
      relais_broker_errors_total: 'COUNTER',
      relais_circuit_breaker_state: 'GAUGE',
      relais_rate_limited_total: 'COUNTER',
      relais_slow_consumer_disconnects_total: 'COUNTER',
      relais_sse_events_total: 'COUNTER',
      relais_sse_latency_ms: 'HISTOGRAM',
      process_cpu_user_seconds_total: 'COUNTER',
      process_resident_memory_bytes: 'GAUGE',
      nodejs_eventloop_lag_seconds: 'GAUGE',
    };
    for (const [name, type] of Object.entries(expected)) expect(families.get(name)?.type, name).toBe(type);
    const buckets = Object.keys(families.get('websocket_message_latency_ms')?.metrics[0]?.buckets ?? {}).map((b) => (b === '+Inf' ? Infinity : Number(b))).sort((a, b) => a - b);
    expect(buckets).toEqual([1, 5, 10, 25, 50, 100, 250, 500, 1000, Infinity]);
    expect(sample(families, 'relais_circuit_breaker_state')).toBe(0);
  });

  it('moves with connections, messages, latency, rate limiting and disconnections', async () => {
    const before = await scrape(relais);
    const alice = await sdkClient(relais, 'alice');
    const bob = await sdkClient(relais, 'bob');
    await bob.subscribe('chat:metrics').ready(5000);
    await alice.subscribe('chat:metrics').ready(5000);
    await alice.centrifuge.publish('chat:metrics', { n: 1 });
    await waitFor(() => bob.pubs('chat:metrics').length === 1 && alice.pubs('chat:metrics').length === 1, 5000, 'deliveries');

    let during = await scrape(relais);
    expect(sample(during, 'websocket_active_connections', { transport: 'websocket' })).toBe(2);
    expect(sample(during, 'websocket_messages_total', { direction: 'inbound', type: 'publish' })).toBe(1);
    expect(sample(during, 'websocket_messages_total', { direction: 'inbound', type: 'subscribe' })).toBe(2);
    expect(sample(during, 'websocket_messages_total', { direction: 'outbound', type: 'publication' })).toBe(
      sample(before, 'websocket_messages_total', { direction: 'outbound', type: 'publication' }) + 2,
    );
    expect(sample(during, 'websocket_messages_total', { direction: 'outbound', type: 'join' })).toBeGreaterThanOrEqual(1);
    expect(sample(during, 'websocket_message_latency_ms')).toBeGreaterThanOrEqual(5);
    expect(sample(during, 'relais_publish_latency_ms')).toBe(1);

    // An SSE stream counts as a connection, and its events and their latency are measured.
    const controller = new AbortController();
    const sse = await fetch(`${relais.httpUrl}/sse?channel=chat:metrics`, {
      headers: { authorization: `Bearer ${await relais.token('dashboard')}` },
      signal: controller.signal,
    });
    expect(sse.status).toBe(200);
    during = await scrape(relais);
    expect(sample(during, 'websocket_active_connections', { transport: 'sse' })).toBe(1);
    await alice.centrifuge.publish('chat:metrics', { n: 2 });
    await waitFor(() => bob.pubs('chat:metrics').length === 2, 5000, 'second delivery');
    during = await scrape(relais);
    expect(sample(during, 'relais_sse_events_total')).toBe(1);
    expect(sample(during, 'relais_sse_latency_ms')).toBe(1);
    controller.abort();

    // A burst over the connection's bucket (5) is refused and counted.
    const raw = await RawClient.open(relais);
    await raw.connect(await relais.token('flooder'));
    raw.sendCommands(...Array.from({ length: 10 }, (_, i) => ({ id: i + 2, publish: { channel: 'chat:metrics', data: i } })));
    await raw.reply(11);
    during = await scrape(relais);
    expect(sample(during, 'relais_rate_limited_total', { scope: 'connection' })).toBeGreaterThanOrEqual(4);

    raw.close();
    alice.close();
    bob.close();
    await waitFor(() => true, 10);
    const after = await (async () => {
      const deadline = Date.now() + 5000;
      for (;;) {
        const m = await scrape(relais);
        if (sample(m, 'websocket_active_connections', { transport: 'websocket' }) === 0 || Date.now() > deadline) return m;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    expect(sample(after, 'websocket_active_connections', { transport: 'websocket' })).toBe(0);
    expect(sample(after, 'websocket_disconnections_total', { reason: 'connection closed' })).toBeGreaterThanOrEqual(3);
  });
});
