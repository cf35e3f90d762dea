/**
 * Smoke test of job progress (seed 001's smoke-lot13.js, for Relais): creates a job, follows
 * it over SSE (`/streams/batches/<id>`) while a worker publishes its states through the HTTP
 * API, counts the events, measures publish-to-event latency, then reads the job's snapshot 10
 * times (server API `latest`) and reports how many reads memory answered.
 *
 *   node --import tsx scripts/smoke_jobs.ts [--url http://127.0.0.1:8000] [--json]
 *
 * RELAIS_API_KEY and RELAIS_TOKEN_SECRET (or RELAIS_TOKEN) name the server's secrets; without
 * them the development ones of `npm start` are used. Exits 1 when an event is missing, comes
 * out of order, or the stream does not end after `complete`.
 */
import { randomBytes } from 'node:crypto';
import { batchChannel, publishJobState, type JobState } from '../client/jobs.js';
import { mintToken } from '../client/token.js';
import { DEV_API_KEY, DEV_TOKEN_SECRET } from '../src/config/defaults.js';

interface BatchState extends JobState {
  readonly batchId: string;
  readonly progress: number;
}

interface SseEvent {
  readonly type: string;
  readonly data: string;
  readonly at: number;
}

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const baseUrl = (flag('--url') ?? process.env['RELAIS_URL'] ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const json = args.includes('--json');
const apiKey = process.env['RELAIS_API_KEY'] ?? DEV_API_KEY;
const log = (line: string): void => {
  if (!json) console.log(line);
};

async function api(method: string, params: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(`${baseUrl}/api/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
    body: JSON.stringify(params),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as { result?: Record<string, unknown>; error?: { message: string } };
  if (!response.ok || body.error || !body.result) throw new Error(`${method}: ${response.status} ${body.error?.message ?? ''}`);
  return body.result;
}

/** Reads an SSE response into events until it ends or `signal` aborts. */
async function readEvents(response: Response, events: SseEvent[]): Promise<void> {
  if (!response.body) return;
  const reader: ReadableStreamDefaultReader<Uint8Array> = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    pending += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      let type = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) type = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) events.push({ type, data: data.join('\n'), at: Date.now() });
    }
  }
}

async function waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function main(): Promise<number> {
  const token = process.env['RELAIS_TOKEN'] ?? (await mintToken(process.env['RELAIS_TOKEN_SECRET'] ?? DEV_TOKEN_SECRET, { user: 'smoke-jobs' }));
  const batchId = `smoke-${randomBytes(4).toString('hex')}`;
  const channel = batchChannel(batchId);
  const states: BatchState[] = [
    { batchId, status: 'PROCESSING', progress: 50 },
    { batchId, status: 'PROCESSING', progress: 75 },
    { batchId, status: 'COMPLETED', progress: 100 },
  ];

  log(`[jobs] creating job ${batchId}...`);
  await api('publish', { channel, data: { batchId, status: 'PROCESSING', progress: 0 } });

  log('[jobs] following it over SSE...');
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 20_000);
  const response = await fetch(`${baseUrl}/streams/batches/${batchId}`, {
    headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
    signal: controller.signal,
  });
  if (response.status !== 200) throw new Error(`SSE answered ${response.status}: ${await response.text()}`);
  const events: SseEvent[] = [];
  let ended = false;
  const reading = readEvents(response, events)
    .catch(() => undefined)
    .finally(() => {
      ended = true;
    });
  const progress = (): SseEvent[] => events.filter((e) => e.type === 'progress');
  await waitUntil(() => progress().length >= 1, 10_000, 'the snapshot');

  const latencies: number[] = [];
  for (const state of states) {
    const before = progress().length;
    const sent = Date.now();
    // The worker's side: the relais/client helper, over the server API.
    await publishJobState({ url: baseUrl, apiKey, id: batchId, state });
    await waitUntil(() => progress().length > before, 10_000, `the ${state.status} ${state.progress}% event`);
    latencies.push((progress()[before]?.at ?? sent) - sent);
  }
  await waitUntil(() => ended, 10_000, 'the end of the stream after complete');
  clearTimeout(timer);
  await reading;
  for (const e of progress()) {
    const s = JSON.parse(e.data) as BatchState;
    log(`  progress: ${s.status} ${s.progress}%`);
  }
  const complete = events.filter((e) => e.type === 'complete');
  const seen = progress().map((e) => (JSON.parse(e.data) as BatchState).progress);
  const ordered = JSON.stringify(seen) === JSON.stringify([0, 50, 75, 100]);
  const sseEvents = progress().length + complete.length;
  log(`[jobs] SSE: ${sseEvents} events (${progress().length} progress, ${complete.length} complete), stream ended: ${ended}`);

  log('[jobs] reading the snapshot 10 times...');
  let hits = 0;
  for (let i = 1; i <= 10; i++) {
    const started = performance.now();
    const result = await api('latest', { channel });
    const cached = result['cached'] === true;
    if (cached) hits++;
    log(`  read ${i}/10: ${(performance.now() - started).toFixed(1)} ms (${cached ? 'memory' : 'bus'})`);
  }
  const summary = {
    batchId,
    sseEvents,
    progressEvents: progress().length,
    completeEvents: complete.length,
    ordered,
    ended,
    latencyMs: { max: Math.max(...latencies), mean: latencies.reduce((a, b) => a + b, 0) / latencies.length },
    cacheHitRatio: hits / 10,
  };
  const ok = ordered && ended && complete.length === 1;
  if (json) console.log(JSON.stringify({ ok, ...summary }));
  else {
    console.log(ok ? '[jobs] smoke test passed' : '[jobs] smoke test FAILED');
    console.log(`  - SSE events: ${sseEvents}`);
    console.log(`  - SSE latency (publish to event): mean ${summary.latencyMs.mean.toFixed(1)} ms, max ${summary.latencyMs.max} ms`);
    console.log(`  - snapshot cache hit ratio: ${(summary.cacheHitRatio * 100).toFixed(0)}% (${hits}/10)`);
  }
  return ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`[jobs] smoke test FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
