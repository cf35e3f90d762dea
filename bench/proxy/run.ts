/**
 * The cost of the publish proxy (docs/proxy.md): the same client publishes, one at a time,
 * into a namespace without a proxy and into one with `proxy_publish`, whose backend (a plain
 * node:http server in its own process, answering `{"result":{}}` at once) is asked before
 * each publication. The difference of the acknowledgement latencies is what the proxy adds.
 *
 *   node --import tsx bench/proxy/run.ts [--publishes 3000] [--warmup 300]
 *
 * Relais runs from dist/ (npm run build first), one process, memory bus, history on.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { startRelais } from '../../test/helpers/relais.js';
import { Histogram, summarize, type LatencySummary } from '../metrics.js';

const { values } = parseArgs({ options: { publishes: { type: 'string', default: '3000' }, warmup: { type: 'string', default: '300' } } });
const PUBLISHES = Number(values.publishes);
const WARMUP = Number(values.warmup);

/**
 * The app backend, in a process of its own as in production: answers every request with
 * `{"result":{}}` at once and counts them.
 */
const BACKEND_SOURCE = `
const http = require('node:http');
let requests = 0;
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => { requests++; res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":{}}'); });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));
process.on('SIGTERM', () => { process.stdout.write('requests ' + requests + '\\n'); process.exit(0); });
`;

async function backend(): Promise<{ url: string; close: () => Promise<string> }> {
  const child = spawn(process.execPath, ['-e', BACKEND_SOURCE], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise<string>((resolve) => lines.once('line', resolve));
  const last = new Promise<string>((resolve) => lines.once('line', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      child.kill('SIGTERM');
      return last;
    },
  };
}

/** A raw JSON-protocol connection: one command in flight, the reply awaited. */
async function connection(url: string, token: string): Promise<(command: Record<string, unknown>) => Promise<Record<string, unknown>>> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let next = 0;
  const waiting = new Map<number, (reply: Record<string, unknown>) => void>();
  ws.on('message', (raw: Buffer) => {
    for (const line of raw.toString().split('\n')) {
      if (line === '') continue;
      const reply = JSON.parse(line) as Record<string, unknown>;
      const id = reply['id'];
      if (typeof id === 'number') waiting.get(id)?.(reply);
    }
  });
  const send = (command: Record<string, unknown>): Promise<Record<string, unknown>> => {
    const id = ++next;
    return new Promise((resolve) => {
      waiting.set(id, (reply) => {
        waiting.delete(id);
        resolve(reply);
      });
      ws.send(JSON.stringify({ id, ...command }));
    });
  };
  const connected = await send({ connect: { token } });
  if (!connected['connect']) throw new Error(`connect refused: ${JSON.stringify(connected)}`);
  return send;
}

async function measure(send: (command: Record<string, unknown>) => Promise<Record<string, unknown>>, channel: string): Promise<LatencySummary> {
  const histogram = new Histogram();
  for (let i = 0; i < WARMUP + PUBLISHES; i++) {
    const started = performance.now();
    const reply = await send({ publish: { channel, data: { n: i, text: 'a message of a usual size for a chat, about eighty bytes long' } } });
    if (reply['error']) throw new Error(`publish refused: ${JSON.stringify(reply['error'])}`);
    if (i >= WARMUP) histogram.recordMs(performance.now() - started);
  }
  return summarize(histogram);
}

const app = await backend();
const relais = await startRelais({
  config: {
    log_level: 'warn',
    // The bench publishes far above the default per-connection limit.
    rate_limit: { connection: { burst: 1_000_000, per_second: 1_000_000 }, user: { burst: 1_000_000, per_second: 1_000_000 } },
    proxy: { publish_url: `${app.url}/publish`, timeout: '5s' },
    namespaces: {
      plain: { allow_publish: 'authenticated', history_size: 100, history_ttl: '5m' },
      proxied: { proxy_publish: true, history_size: 100, history_ttl: '5m' },
    },
  },
});
try {
  const send = await connection(relais.wsUrl, await relais.token('bench'));
  // Alternated runs, so that a drift of the machine's load weighs on both alike.
  const plain: LatencySummary[] = [];
  const proxied: LatencySummary[] = [];
  for (let round = 0; round < 2; round++) {
    plain.push(await measure(send, 'plain:bench'));
    proxied.push(await measure(send, 'proxied:bench'));
  }
  const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(3));
  const load = (await import('node:os')).loadavg()[0]?.toFixed(2) ?? '?';
  process.stdout.write(`publish acknowledgement latency, ms (${PUBLISHES} sequential publishes per run, load average ${load})\n`);
  process.stdout.write('run        p50     p99     mean\n');
  for (let i = 0; i < plain.length; i++) {
    for (const [name, s] of [['plain', plain[i]], ['proxied', proxied[i]]] as const) {
      process.stdout.write(`${name.padEnd(8)} ${fmt(s?.p50 ?? null).padStart(7)} ${fmt(s?.p99 ?? null).padStart(7)} ${fmt(s?.mean ?? null).padStart(7)}\n`);
    }
  }
  const mid = (list: LatencySummary[], key: 'p50' | 'p99'): number => list.map((s) => s[key] ?? 0).reduce((a, b) => a + b, 0) / list.length;
  process.stdout.write(`added by the proxy: p50 ${(mid(proxied, 'p50') - mid(plain, 'p50')).toFixed(3)} ms, p99 ${(mid(proxied, 'p99') - mid(plain, 'p99')).toFixed(3)} ms\n`);
} finally {
  await relais.stop();
  process.stdout.write(`backend ${await app.close()}\n`);
}
