/**
 * Group-commit throughput of Store.append: closed loops of 1, 64 and 512 concurrent callers
 * (each appends one message, waits for it, appends the next), then an open loop at a fixed
 * rate (1,000/s) for the latency the chat target names. Bounded in time: each step runs
 * --seconds (default 3). Prints a Markdown table.
 *
 *   node --import tsx bench/store/append.ts [--stores sqlite,postgres] [--seconds 3] [--rates 1000] [--in-flight 1|2]
 */
import { parseArgs } from 'node:util';
import type { JsonText } from '../../src/core/json.js';
import type { AppendRequest, Store } from '../../src/stores/store.js';
import { quantileOf } from '../metrics.js';
import { openBenchStore, type StoreKind } from './stores.js';

const { values: args } = parseArgs({
  options: {
    stores: { type: 'string', default: 'sqlite,postgres' },
    seconds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,64,512' },
    rates: { type: 'string', default: '1000' },
    channels: { type: 'string', default: '100' },
    // PostgreSQL group-commit transactions in flight (the store's default is 2).
    'in-flight': { type: 'string' },
  },
});
const stepMs = Number(args.seconds) * 1000;
const channels = Number(args.channels);
// A chat message as the node would store it: ~120 bytes of data, a publisher, a tempId.
const info = { user: 'user-1234', client: '5f0c8a52-7a4e-4bd1-9d1e-0a4c2b1d9e77' };

let counter = 0;
function request(): AppendRequest {
  const n = counter++;
  return {
    channel: `chat:room-${n % channels}`,
    data: JSON.stringify({ text: `message number ${n} with a few words of chat in it, as people type them`, at: n }) as JsonText,
    info,
    tempId: `tmp-${n}`,
    time: Date.now(),
  };
}

interface Step {
  readonly label: string;
  readonly count: number;
  readonly errors: number;
  readonly seconds: number;
  readonly latencies: number[];
}

async function closedLoop(store: Store, callers: number): Promise<Step> {
  const latencies: number[] = [];
  let errors = 0;
  const t0 = performance.now();
  const end = t0 + stepMs;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      for (let i = 0; i < 10_000_000 && performance.now() < end; i++) {
        const start = performance.now();
        try {
          await store.append([request()]);
          latencies.push(performance.now() - start);
        } catch {
          errors++;
        }
      }
    }),
  );
  return { label: `${callers} concurrent`, count: latencies.length, errors, seconds: (performance.now() - t0) / 1000, latencies };
}

async function openLoop(store: Store, rate: number): Promise<Step> {
  const latencies: number[] = [];
  let errors = 0;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  const total = Math.round((rate * stepMs) / 1000);
  // Sent on schedule whatever the answers: a slow store shows as latency, not as a lower rate.
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    const start = performance.now();
    pending.push(
      store.append([request()]).then(
        () => void latencies.push(performance.now() - start),
        () => void errors++,
      ),
    );
  }
  await Promise.all(pending);
  return { label: `${rate}/s open loop`, count: latencies.length, errors, seconds: (performance.now() - t0) / 1000, latencies };
}

const fmt = (ms: number | null): string => (ms === null ? '-' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1));

async function main(): Promise<void> {
  const kinds = args.stores.split(',').filter((k): k is StoreKind => k === 'sqlite' || k === 'postgres');
  const rows: string[] = ['| store | load | appends/s | p50 ms | p99 ms | errors |', '|---|---|---:|---:|---:|---:|'];
  for (const kind of kinds) {
    const bench = await openBenchStore(kind, args['in-flight'] ? Number(args['in-flight']) : undefined);
    try {
      await closedLoop(bench.store, 16); // warm-up: connections, prepared statements, JIT
      const steps: Step[] = [];
      for (const c of args.concurrency.split(',').map(Number)) steps.push(await closedLoop(bench.store, c));
      for (const r of args.rates.split(',').map(Number)) steps.push(await openLoop(bench.store, r));
      for (const s of steps) {
        const line = `| ${kind} | ${s.label} | ${Math.round(s.count / s.seconds).toLocaleString('en-US')} | ${fmt(quantileOf(s.latencies, 0.5))} | ${fmt(quantileOf(s.latencies, 0.99))} | ${s.errors} |`;
        rows.push(line);
        console.error(line);
      }
    } finally {
      await bench.dispose();
    }
  }
  console.log(rows.join('\n'));
}

await main();
