/**
 * Job progress (seed 001) on a Relais started with nothing configured: a worker publishes a
 * job's states through the HTTP API, the real `eventsource` client follows `batch:<id>` and
 * gets the current state, each change as `progress`, then `complete`, and the stream ends for
 * good; a stream cut mid-job resumes from its Last-Event-ID with nothing lost or repeated; the
 * `centrifuge` SDK gets the latest state on subscribe (cache recovery mode); the server API
 * `latest` is answered from memory after one read; and the smoke script passes.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { SubscribedContext } from 'centrifuge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sdkClient, waitFor, type SdkClient } from './helpers/clients.js';
import { sample, scrape } from './helpers/metrics.js';
import { REPO_ROOT, startRelais, withTimeout, type RelaisProcess } from './helpers/relais.js';
import { NEWEST_PROTOBUF_SDK, NEWEST_SDK } from './helpers/sdk_versions.js';
import { EventSourceClient } from './helpers/sse.js';

interface JobState {
  readonly status: string;
  readonly progress: number;
}

const JOB_EVENTS = ['progress', 'complete'] as const;

describe('job progress over SSE and the centrifuge SDK (embedded batch namespace)', () => {
  let relais: RelaisProcess;
  const sources: EventSourceClient[] = [];
  const sdks: SdkClient[] = [];

  beforeAll(async () => {
    relais = await startRelais();
  });

  afterAll(async () => {
    for (const s of sources) s.close();
    for (const c of sdks) c.close();
    await relais.stop();
  });

  const job = (): string => `job-${randomBytes(4).toString('hex')}`;
  const publish = (id: string, state: JobState): Promise<unknown> => relais.call('publish', { channel: `batch:${id}`, data: { batchId: id, ...state } });
  const follow = async (url: string, firstHeaders: Record<string, string> = {}): Promise<EventSourceClient> => {
    const source = new EventSourceClient(url, { token: await relais.token('viewer'), events: JOB_EVENTS, firstHeaders });
    sources.push(source);
    return source;
  };
  const states = (source: EventSourceClient, type: 'progress' | 'complete'): JobState[] =>
    source.events.filter((e) => e.type === type).map((e) => JSON.parse(e.data) as JobState);
  const envelopes = (source: EventSourceClient): { offset: number; data: JobState }[] =>
    source.events.filter((e) => e.type === 'progress').map((e) => JSON.parse(e.data) as { offset: number; data: JobState });

  it('sends the current state, each change as progress, then complete, and the stream ends for good', async () => {
    const id = job();
    await publish(id, { status: 'PROCESSING', progress: 0 });
    const source = await follow(`${relais.httpUrl}/streams/batches/${id}`);
    await waitFor(() => states(source, 'progress').length === 1, 10_000, 'the snapshot');
    await publish(id, { status: 'PROCESSING', progress: 50 });
    await publish(id, { status: 'PROCESSING', progress: 75 });
    await publish(id, { status: 'PARTIAL', progress: 100 });
    await waitFor(() => states(source, 'complete').length === 1, 10_000, 'complete');
    // The server ended the stream; EventSource comes back once with its Last-Event-ID, gets 204, and stays closed.
    await waitFor(() => source.source.readyState === source.source.CLOSED, 10_000, 'EventSource closed');
    expect(states(source, 'progress').map((s) => s.progress)).toEqual([0, 50, 75, 100]);
    expect(states(source, 'complete')).toEqual([{ batchId: id, status: 'PARTIAL', progress: 100 }]);
    expect(source.attempts.map((a) => a.status)).toEqual([200, 204]);
    expect(source.events.at(-1)?.type).toBe('complete');
  });

  it('resumes a stream cut mid-job from its Last-Event-ID with nothing lost or repeated', async () => {
    const id = job();
    const url = `${relais.httpUrl}/sse?channel=batch:${id}`;
    await publish(id, { status: 'QUEUED', progress: 0 });
    const first = await follow(url);
    await waitFor(() => envelopes(first).length === 1, 10_000, 'the snapshot');
    for (let p = 10; p <= 30; p += 10) await publish(id, { status: 'PROCESSING', progress: p });
    await waitFor(() => envelopes(first).length === 4, 10_000, '4 progress events');
    const lastId = first.lastEventId;
    first.close();

    for (let p = 40; p <= 60; p += 10) await publish(id, { status: 'PROCESSING', progress: p });
    const second = await follow(url, { 'Last-Event-ID': lastId });
    await waitFor(() => envelopes(second).length === 3, 10_000, 'the 3 missed states');
    await publish(id, { status: 'COMPLETED', progress: 100 });
    await waitFor(() => states(second, 'complete').length === 1, 10_000, 'complete');

    const offsets = [...envelopes(first), ...envelopes(second)].map((e) => e.offset);
    expect(offsets).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(envelopes(second).map((e) => e.data.progress)).toEqual([40, 50, 60, 100]);
    expect(second.named('subscribed')[0]).toMatchObject({ was_recovering: true, recovered: true });
  });

  it.each([NEWEST_SDK, NEWEST_PROTOBUF_SDK])('gives the centrifuge SDK ($protocol) the latest state on subscribe (cache recovery mode), then the live ones', async (sdk) => {
    const id = job();
    const channel = `batch:${id}`;
    for (let p = 10; p <= 30; p += 10) await publish(id, { status: 'PROCESSING', progress: p });
    const alice = await sdkClient(relais, 'alice', { sdk });
    sdks.push(alice);
    const contexts: SubscribedContext[] = [];
    // `since: {}`: recover from the first subscribe, as Centrifugo's cache mode documentation asks.
    const sub = alice.subscribe(channel, { since: {} });
    sub.on('subscribed', (ctx) => contexts.push(ctx));
    await sub.ready(5000);
    await waitFor(() => alice.pubs(channel).length === 1, 5000, 'the latest state');
    expect(contexts[0]).toMatchObject({ recoverable: true, wasRecovering: true, recovered: true, streamPosition: { offset: 3 } });
    await publish(id, { status: 'COMPLETED', progress: 100 });
    await waitFor(() => alice.pubs(channel).length === 2, 5000, 'the live state');
    expect(alice.pubs(channel).map((ctx) => [ctx.offset, (sdk.decode(ctx.data) as JobState).progress])).toEqual([
      [3, 30],
      [4, 100],
    ]);

    // A subscriber that does not ask to recover gets the latest too (no was_recovering).
    const bob = await sdkClient(relais, 'bob', { sdk });
    sdks.push(bob);
    const bobContexts: SubscribedContext[] = [];
    const bobSub = bob.subscribe(channel);
    bobSub.on('subscribed', (ctx) => bobContexts.push(ctx));
    await bobSub.ready(5000);
    await waitFor(() => bob.pubs(channel).length === 1, 5000, 'the latest state for bob');
    expect(bobContexts[0]).toMatchObject({ recoverable: true, wasRecovering: false, recovered: false });
    expect((sdk.decode(bob.pubs(channel)[0]?.data) as JobState).progress).toBe(100);
  });

  it('answers `latest` from memory after one read (POST and GET), counted as hits and misses; refuses bad input', async () => {
    const id = job();
    const channel = `batch:${id}`;
    await publish(id, { status: 'PROCESSING', progress: 5 });
    const before = await scrape(relais);
    const cached: boolean[] = [];
    for (let i = 0; i < 5; i++) cached.push((await relais.call<{ cached: boolean }>('latest', { channel })).cached);
    for (let i = 0; i < 5; i++) {
      const response = await fetch(`${relais.httpUrl}/api/latest?channel=${encodeURIComponent(channel)}`, { headers: { 'x-api-key': relais.apiKey } });
      const body = (await response.json()) as { result: { cached: boolean; offset: number; publication: { data: JobState; offset: number } } };
      expect(body.result).toMatchObject({ offset: 1, publication: { offset: 1, data: { progress: 5 } } });
      cached.push(body.result.cached);
    }
    expect(cached).toEqual([false, true, true, true, true, true, true, true, true, true]);
    await publish(id, { status: 'PROCESSING', progress: 6 });
    // The entry follows the channel: the new state at once, from memory.
    expect(await relais.call('latest', { channel })).toMatchObject({ offset: 2, cached: true, publication: { data: { progress: 6 } } });
    const after = await scrape(relais);
    const delta = (name: string): number => sample(after, name) - sample(before, name);
    expect({ hits: delta('relais_snapshot_cache_hits_total'), misses: delta('relais_snapshot_cache_misses_total') }).toEqual({ hits: 10, misses: 1 });
    expect(sample(after, 'relais_snapshot_cache_hit_ratio')).toBeGreaterThan(0);

    expect((await relais.api('latest', { channel: 'nohistory' })).body.error?.code).toBe(108);
    expect((await relais.api('latest', {})).status).toBe(400);
    expect((await relais.api('latest', { channel: 'batch:a b' })).status).toBe(400);
    // A job state that is not an object is a progress event like any other, never final.
    await relais.call('publish', { channel, data: 'not an object' });
    expect(await relais.call('latest', { channel })).toMatchObject({ offset: 3, publication: { data: 'not an object' } });
  });

  it('passes the smoke script (seed 001 smoke-lot13.js) and counts SSE events and latency', async () => {
    const before = await scrape(relais);
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/smoke_jobs.ts', '--url', relais.httpUrl, '--json'], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '', RELAIS_API_KEY: relais.apiKey, RELAIS_TOKEN_SECRET: relais.secret },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await withTimeout(new Promise<number | null>((resolve) => child.once('close', resolve)), 30_000, `smoke script still running:\n${output}`);
    expect(code, output).toBe(0);
    const result = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as { ok: boolean; sseEvents: number; ordered: boolean; ended: boolean; latencyMs: { mean: number; max: number }; cacheHitRatio: number };
    expect(result).toMatchObject({ ok: true, sseEvents: 5, ordered: true, ended: true });
    console.log(`smoke: ${result.sseEvents} SSE events, latency mean ${result.latencyMs.mean.toFixed(1)} ms max ${result.latencyMs.max} ms, snapshot hit ratio ${result.cacheHitRatio}`);
    const after = await scrape(relais);
    expect(sample(after, 'relais_sse_events_total') - sample(before, 'relais_sse_events_total')).toBe(4);
    expect(sample(after, 'relais_sse_latency_ms') - sample(before, 'relais_sse_latency_ms')).toBe(3);
  });
});
