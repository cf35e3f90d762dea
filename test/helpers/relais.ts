/**
 * Starts real Relais server processes for integration tests: `node dist/src/cli/main.js
 * serve` on a free port, with its own secrets and an optional config file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { mintToken, type TokenClaims } from '../../client/token.js';

export const REPO_ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(REPO_ROOT, 'dist/src/cli/main.js');

export interface RelaisOptions {
  /** Config file contents (JSON), merged over the embedded defaults by the server. */
  readonly config?: Record<string, unknown>;
  readonly env?: Record<string, string>;
  readonly startTimeoutMs?: number;
  /** `relais serve --workers N`: resolves once every worker listens. */
  readonly workers?: number;
}

export interface ApiReply {
  readonly status: number;
  readonly body: { result?: unknown; error?: { code: number; message: string; temporary?: boolean } };
}

export class RelaisProcess {
  readonly logs: string[] = [];
  private exited: Promise<number | null>;

  constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly apiKey: string,
    readonly secret: string,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', (code) => resolve(code));
    });
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/connection/websocket`;
  }

  token(user: string, claims: Omit<TokenClaims, 'user'> = {}): Promise<string> {
    return mintToken(this.secret, { user, ...claims });
  }

  async api(method: string, params: unknown, apiKey = this.apiKey): Promise<ApiReply> {
    const response = await fetch(`${this.httpUrl}/api/${method}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
      body: JSON.stringify(params),
      signal: AbortSignal.timeout(10_000),
    });
    return { status: response.status, body: (await response.json()) as ApiReply['body'] };
  }

  /** Calls an API method and returns its result, failing the test on an error reply. */
  async call<T = Record<string, unknown>>(method: string, params: unknown): Promise<T> {
    const reply = await this.api(method, params);
    if (reply.body.error || reply.status !== 200) throw new Error(`API ${method} failed: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body.result as T;
  }

  /** SIGTERM and wait for the process to exit (graceful shutdown). */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return withTimeout(this.exited, 10_000, 'relais did not stop after SIGTERM');
  }

  async kill9(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await withTimeout(this.exited, 5_000, 'relais did not die after SIGKILL');
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

let counter = 0;

/** The environment (and config file) of a Relais process; env values override the test secrets. */
function prepare(options: RelaisOptions): { env: Record<string, string>; secret: string; apiKey: string } {
  const dir = mkdtempSync(join(tmpdir(), 'relais-test-'));
  const secret = `test-secret-${process.pid}-${++counter}-0123456789`;
  const apiKey = `test-api-key-${process.pid}-${counter}`;
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '',
    PORT: '0',
    // Each process its own durable store (persistent namespaces), unless the test shares one.
    RELAIS_DATA_DIR: join(dir, 'data'),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    RELAIS_API_KEY: apiKey,
    RELAIS_TOKEN_SECRET: secret,
    ...options.env,
  };
  if (options.config) {
    const file = join(dir, 'relais.json');
    writeFileSync(file, JSON.stringify(options.config));
    env['RELAIS_CONFIG'] = file;
  }
  return { env, secret: env['RELAIS_TOKEN_SECRET'] ?? secret, apiKey: env['RELAIS_API_KEY'] ?? apiKey };
}

/** How a Relais process that was expected to exit on its own ended, with all it printed. */
export interface RelaisExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
  readonly ms: number;
}

/**
 * Runs `relais serve` until it exits by itself (a start-up refusal); SIGKILLs it and rejects
 * when it is still running after `timeoutMs`.
 */
export async function runRelaisToExit(options: RelaisOptions = {}, timeoutMs = 20_000): Promise<RelaisExit> {
  const { env } = prepare(options);
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  // 'close' comes after the process exited and its output streams ended: nothing is missed.
  const closed = new Promise<RelaisExit>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, output: chunks.join(''), ms: Date.now() - started })),
  );
  try {
    return await withTimeout(closed, timeoutMs, `relais still running after ${timeoutMs} ms`);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}; output:\n${chunks.join('')}`);
  }
}

/** Starts a Relais process on a free port and resolves once it listens. */
export async function startRelais(options: RelaisOptions = {}): Promise<RelaisProcess> {
  const { env, secret, apiKey } = prepare(options);
  const args = options.workers !== undefined ? ['--workers', String(options.workers)] : [];
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  let listening = 0;
  const port = await withTimeout(
    new Promise<number>((resolvePort, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        logs.push(line);
        const match = /listening on [^"]*:(\d+)"/.exec(line);
        if (match && ++listening >= (options.workers ?? 1)) resolvePort(Number(match[1]));
      });
      createInterface({ input: child.stderr }).on('line', (line) => logs.push(line));
      child.once('exit', (code) => reject(new Error(`relais exited with ${code}:\n${logs.join('\n')}`)));
    }),
    options.startTimeoutMs ?? 15_000,
    'relais did not start in time',
  ).catch((err: unknown) => {
    // A server that never said it listens is not left running behind the failed start.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw err;
  });
  const relais = new RelaisProcess(child, port, apiKey, secret);
  relais.logs.push(...logs);
  child.stdout.on('data', (chunk: Buffer) => relais.logs.push(chunk.toString()));
  return relais;
}
