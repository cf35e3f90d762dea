/**
 * The cost of WebSocket permessage-deflate per connection: one Relais process with and without
 * `websocket.compression`, N clients that offer the extension (as browsers do) subscribed to one
 * channel, idle, then under a fan-out of compressible publications. Prints the server's RSS and
 * CPU time and the bytes the clients read, as one JSON line per run.
 *
 *   node --import tsx bench/compression.ts [connections=1000] [publications=100] [payloadBytes=4000]
 *
 * Bounded: N connections, P publications at 20/s, every wait with a deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { ClientRequestArgs } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { mintToken } from '../client/token.js';
import { repoRoot } from './children.js';
import { sleep } from './net.js';
import { cpuTimeUs, rssBytes } from './procstat.js';

const SECRET = 'bench-compression-secret-0123456789';
const API_KEY = 'bench-compression-key';

async function startServer(compression: boolean): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'serve'], {
    env: { PATH: process.env['PATH'] ?? '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', RELAIS_TOKEN_SECRET: SECRET, RELAIS_API_KEY: API_KEY, RELAIS_DATA_DIR: join('/tmp', `relais-bench-zip-${process.pid}`), RELAIS_WS_COMPRESSION: String(compression) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('relais did not start')), 20_000);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const match = /listening on [^"]*:(\d+)"/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
  });
  return { child, port };
}

interface BenchClient {
  readonly ws: WebSocket;
  /** The client's TCP socket: its bytesRead are the wire bytes, compressed or not. */
  readonly socket: Socket;
  received: number;
}

async function openClients(port: number, n: number): Promise<BenchClient[]> {
  const clients: BenchClient[] = [];
  for (let i = 0; i < n; i++) {
    let socket: Socket | undefined;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/connection/websocket`, {
      perMessageDeflate: true,
      createConnection: (options: ClientRequestArgs) => (socket = connect({ port: Number(options.port), host: '127.0.0.1' })),
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const client: BenchClient = { ws, socket: socket as Socket, received: 0 };
    ws.on('message', (data: Buffer) => {
      if (data.includes('"pub"')) client.received++;
    });
    ws.send(`${JSON.stringify({ id: 1, connect: { token: await mintToken(SECRET, { user: `u${i}` }) } })}\n${JSON.stringify({ id: 2, subscribe: { channel: 'bench' } })}`);
    clients.push(client);
  }
  return clients;
}

async function waitUntil(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

async function run(compression: boolean, n: number, publications: number, payloadBytes: number): Promise<Record<string, unknown>> {
  const { child, port } = await startServer(compression);
  const pid = child.pid as number;
  try {
    const rssStart = rssBytes(pid) ?? 0;
    const clients = await openClients(port, n);
    await sleep(3000);
    const rssIdle = rssBytes(pid) ?? 0;
    const cpuIdle0 = cpuTimeUs(pid) ?? 0;
    await sleep(5000);
    const cpuIdle = (cpuTimeUs(pid) ?? 0) - cpuIdle0;

    // A chat-like payload: repetitive JSON, as real messages are.
    const item = { user: 'alice', text: 'the quick brown fox jumps over the lazy dog', room: 'general' };
    const data = { items: Array.from({ length: Math.max(1, Math.round(payloadBytes / JSON.stringify(item).length)) }, (_, i) => ({ ...item, i })) };
    const bytes0 = clients.reduce((sum, c) => sum + c.socket.bytesRead, 0);
    const cpu0 = cpuTimeUs(pid) ?? 0;
    const started = Date.now();
    for (let p = 0; p < publications; p++) {
      const response = await fetch(`http://127.0.0.1:${port}/api/publish`, { method: 'POST', headers: { 'x-api-key': API_KEY }, body: JSON.stringify({ channel: 'bench', data }) });
      await response.arrayBuffer();
      await sleep(50);
    }
    await waitUntil(() => clients.every((c) => c.received >= publications), 120_000, 'fan-out delivered');
    const fanoutMs = Date.now() - started;
    const cpuFanout = (cpuTimeUs(pid) ?? 0) - cpu0;
    const rssFanout = rssBytes(pid) ?? 0;
    const bytes = clients.reduce((sum, c) => sum + c.socket.bytesRead, 0) - bytes0;
    for (const c of clients) c.ws.terminate();
    return {
      compression,
      connections: n,
      publications,
      payloadBytes: JSON.stringify(data).length,
      rssStartMB: +(rssStart / 1048576).toFixed(1),
      rssIdleMB: +(rssIdle / 1048576).toFixed(1),
      idleKBPerConnection: +((rssIdle - rssStart) / 1024 / n).toFixed(1),
      idleCpuMsPer5s: Math.round(cpuIdle / 1000),
      rssAfterFanoutMB: +(rssFanout / 1048576).toFixed(1),
      fanoutKBPerConnection: +((rssFanout - rssStart) / 1024 / n).toFixed(1),
      fanoutCpuMs: Math.round(cpuFanout / 1000),
      cpuUsPerDelivery: +(cpuFanout / (n * publications)).toFixed(2),
      bytesPerDelivery: Math.round(bytes / (n * publications)),
      fanoutMs,
    };
  } finally {
    child.kill('SIGKILL');
  }
}

const [n = 1000, publications = 100, payloadBytes = 4000] = process.argv.slice(2).map(Number);
for (const compression of [false, true]) {
  console.log(JSON.stringify(await run(compression, n, publications, payloadBytes)));
}
