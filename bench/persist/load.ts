/**
 * Load process of the persisted-publish bench: publisher connections that each wait for the
 * acknowledgement of a message before sending the next (closed loop), or share a fixed rate
 * (open loop), and subscribers in the same room counting what they receive. Started by
 * bench/persist/run.ts with `fork`; one `run` message per step, one `result` reply.
 */
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { connectionToken } from '../load/jwt.js';
import { Histogram, summarize, type LatencySummary } from '../metrics.js';

export interface LoadSetup {
  readonly protocol: 'relais' | 'seed';
  /** Relais: ws://host:port; seed: http://host:port. */
  readonly url: string;
  readonly tokenSecret?: string;
  readonly channel: string;
  readonly publishers: number;
  readonly subscribers: number;
}

export interface LoadStep {
  readonly mode: 'closed' | 'open';
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Messages per second, all publishers together (open loop). */
  readonly rate?: number;
}

export interface LoadResult {
  readonly acked: number;
  readonly errors: number;
  readonly firstError: string;
  readonly latencyMs: LatencySummary;
  readonly elapsedMs: number;
  /** Messages the subscribers received during the step, all subscribers together. */
  readonly delivered: number;
}

export type ToLoad = { readonly type: 'setup'; readonly setup: LoadSetup } | { readonly type: 'run'; readonly step: LoadStep };
export type FromLoad = { readonly type: 'ready' } | { readonly type: 'result'; readonly result: LoadResult } | { readonly type: 'fatal'; readonly message: string };

interface Publisher {
  /** Resolves when the server acknowledged the message (stored and broadcast), rejects on a refusal. */
  publish(text: string): Promise<void>;
}

const PAYLOAD_PAD = 'x'.repeat(80);
let delivered = 0;
let sequence = 0;
const closers: (() => void)[] = [];

function reply(message: FromLoad): void {
  process.send?.(message);
}

async function relaisConnection(setup: LoadSetup, user: string, subscribe: boolean): Promise<Publisher> {
  const ws = new WebSocket(`${setup.url}/connection/websocket`);
  closers.push(() => ws.terminate());
  const waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  let nextId = 3;
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('open', () => {
      ws.send(JSON.stringify({ id: 1, connect: { token: connectionToken(setup.tokenSecret ?? '', user) } }));
      if (subscribe) ws.send(JSON.stringify({ id: 2, subscribe: { channel: setup.channel } }));
    });
    ws.on('message', (data: Buffer) => {
      const text = data.toString();
      if (text === '{}') {
        ws.send('{}');
        return;
      }
      const frame = JSON.parse(text) as { id?: number; error?: { message: string }; push?: { pub?: unknown } };
      if (frame.push?.pub !== undefined) {
        delivered++;
        return;
      }
      if (frame.id === (subscribe ? 2 : 1)) {
        if (frame.error) reject(new Error(frame.error.message));
        else resolve();
        return;
      }
      const waiter = frame.id === undefined ? undefined : waiting.get(frame.id);
      if (!waiter || frame.id === undefined) return;
      waiting.delete(frame.id);
      if (frame.error) waiter.reject(new Error(frame.error.message));
      else waiter.resolve();
    });
  });
  return {
    publish(text) {
      const id = nextId++;
      ws.send(`{"id":${id},"publish":{"channel":"${setup.channel}","data":${text}}}`);
      return new Promise((resolve, reject) => waiting.set(id, { resolve, reject }));
    },
  };
}

async function seedConnection(setup: LoadSetup, user: string, subscribe: boolean): Promise<Publisher> {
  const socket: Socket = io(setup.url, { transports: ['websocket'], auth: { userId: user }, reconnection: false });
  closers.push(() => socket.disconnect());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  if (subscribe) {
    socket.on('NEW_MESSAGE', () => delivered++);
    await new Promise<void>((resolve) => socket.emit('JOIN_ROOM', { roomId: setup.channel }, () => resolve()));
  }
  return {
    publish(text) {
      return new Promise((resolve) => socket.emit('SEND_MESSAGE', { roomId: setup.channel, content: text, tempId: String(sequence) }, () => resolve()));
    },
  };
}

let publishers: Publisher[] = [];

async function setUp(setup: LoadSetup): Promise<void> {
  const open = setup.protocol === 'relais' ? relaisConnection : seedConnection;
  for (let i = 0; i < setup.subscribers; i++) await open(setup, `reader-${i}`, true);
  publishers = await Promise.all(Array.from({ length: setup.publishers }, (_, i) => open(setup, `writer-${i}`, false)));
}

function message(): string {
  return `{"n":${++sequence},"text":"${PAYLOAD_PAD}"}`;
}

async function run(step: LoadStep): Promise<LoadResult> {
  const latency = new Histogram();
  let acked = 0;
  let errors = 0;
  let firstError = '';
  let measuring = false;
  let stopped = false;
  const inFlight = new Set<Promise<void>>();
  const send = (publisher: Publisher): Promise<void> => {
    const started = performance.now();
    const counted = measuring;
    const done = publisher.publish(message()).then(
      () => {
        if (!counted || !measuring) return;
        acked++;
        latency.recordMs(performance.now() - started);
      },
      (err: unknown) => {
        errors++;
        firstError ||= err instanceof Error ? err.message : String(err);
      },
    );
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
    return done;
  };
  let loops: Promise<void>[] = [];
  let timer: NodeJS.Timeout | undefined;
  if (step.mode === 'closed') {
    loops = publishers.map(async (publisher) => {
      while (!stopped) await send(publisher);
    });
  } else {
    const perTick = (step.rate ?? 1000) / 100;
    let credit = 0;
    let next = 0;
    timer = setInterval(() => {
      credit += perTick;
      for (; credit >= 1; credit--) void send(publishers[next++ % publishers.length] as Publisher);
    }, 10);
  }
  await new Promise((r) => setTimeout(r, step.warmupMs));
  const deliveredAtStart = delivered;
  measuring = true;
  const started = performance.now();
  await new Promise((r) => setTimeout(r, step.measureMs));
  measuring = false;
  const elapsedMs = performance.now() - started;
  const deliveredDuring = delivered - deliveredAtStart;
  stopped = true;
  if (timer) clearInterval(timer);
  await Promise.race([Promise.all([...loops, ...inFlight]), new Promise((r) => setTimeout(r, 10_000))]);
  return { acked, errors, firstError, latencyMs: summarize(latency), elapsedMs, delivered: deliveredDuring };
}

process.on('message', (raw: ToLoad) => {
  const work = raw.type === 'setup' ? setUp(raw.setup).then(() => reply({ type: 'ready' })) : run(raw.step).then((result) => reply({ type: 'result', result }));
  work.catch((err: unknown) => reply({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }));
});
process.on('disconnect', () => {
  for (const close of closers) close();
  process.exit(0);
});
