/**
 * Where the CLI finds the server and with which credentials. `--url` and RELAIS_URL may name the
 * server in either form (`http://host:8000` or `ws://host:8000/connection/websocket`); each
 * command takes the form it needs.
 */
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { mintToken } from '../../client/token.js';
import { DEV_API_KEY } from '../config/defaults.js';
import { cliTokenSecret } from './token.js';

export const WEBSOCKET_PATH = '/connection/websocket';

type Env = Readonly<Record<string, string | undefined>>;

function parseUrl(raw: string, what: string): URL {
  try {
    return new URL(raw);
  } catch {
    throw new Error(`${what} "${raw}" is not a URL (expected e.g. http://127.0.0.1:8000)`);
  }
}

function defaultUrl(env: Env): string {
  return env['RELAIS_URL'] || `http://127.0.0.1:${env['PORT'] || '8000'}`;
}

/** Base of the HTTP API (`<base>/api/<method>`), without a trailing slash. */
export function httpBaseUrl(flag: string | undefined, env: Env): string {
  const url = parseUrl(flag ?? defaultUrl(env), flag !== undefined ? '--url' : 'RELAIS_URL');
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  else if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported URL scheme "${url.protocol}" (use http, https, ws or wss)`);
  let path = url.pathname.replace(/\/+$/, '');
  if (path.endsWith(WEBSOCKET_PATH)) path = path.slice(0, -WEBSOCKET_PATH.length);
  return `${url.protocol}//${url.host}${path}`;
}

/** The WebSocket endpoint; a bare server URL gets the `/connection/websocket` path. */
export function websocketUrl(flag: string | undefined, env: Env): string {
  const url = parseUrl(flag ?? defaultUrl(env), flag !== undefined ? '--url' : 'RELAIS_URL');
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new Error(`unsupported URL scheme "${url.protocol}" (use http, https, ws or wss)`);
  if (url.pathname === '/' || url.pathname === '') url.pathname = WEBSOCKET_PATH;
  return url.toString();
}

/** RELAIS_API_KEY, or the development key outside production. */
export function apiKey(env: Env): string {
  const key = env['RELAIS_API_KEY'];
  if (key) return key;
  if (env['NODE_ENV'] === 'production') throw new Error('RELAIS_API_KEY is required when NODE_ENV=production');
  return DEV_API_KEY;
}

/** A short random suffix for default user ids. */
export function randomId(): string {
  return Math.random().toString(36).slice(2, 8).padEnd(6, '0');
}

export interface CliClientOptions {
  readonly url: string;
  readonly user: string;
  /** A connection token to use as is; without it the CLI mints (and refreshes) its own. */
  readonly token?: string;
  readonly name: string;
}

/**
 * A `centrifuge` client for the CLI. Without `token`, connection tokens for `user` are signed
 * with the CLI secret (RELAIS_TOKEN_SECRET, or the development one) and minted again when the
 * server asks for a refresh.
 */
export function cliCentrifuge(options: CliClientOptions): Centrifuge {
  let auth: { token: string } | { getToken: () => Promise<string> };
  if (options.token !== undefined) {
    auth = { token: options.token };
  } else {
    const secret = cliTokenSecret();
    auth = { getToken: () => mintToken(secret, { user: options.user, ttlSeconds: 3600 }) };
  }
  return new Centrifuge(options.url, {
    websocket: WebSocket,
    name: options.name,
    ...auth,
    minReconnectDelay: 500,
    maxReconnectDelay: 10_000,
    timeout: 10_000,
  });
}

/** A readable message for what `centrifuge` rejects with (an Error or `{code, message}`). */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null) {
    const { code, message } = err as { code?: unknown; message?: unknown };
    if (typeof message === 'string' && typeof code === 'number') return `${message} (code ${code})`;
    if (typeof message === 'string') return message;
  }
  return String(err);
}

/** Writes what is buffered on stdout and stderr, then exits. */
export async function flushAndExit(code: number): Promise<never> {
  await Promise.all(
    [process.stdout, process.stderr].map(
      (stream) =>
        new Promise<void>((resolve) => {
          if (stream.destroyed || !stream.writable) resolve();
          else stream.write('', () => resolve());
        }),
    ),
  );
  process.exit(code);
}
