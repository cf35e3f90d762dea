import { parseArgs } from 'node:util';
import { apiKey, httpBaseUrl } from './endpoints.js';

const USAGE = 'usage: relais publish <channel> <json> [--url <server url>] [--idempotency-key <key>]';
const REQUEST_TIMEOUT_MS = 10_000;

interface ApiBody {
  readonly result?: unknown;
  readonly error?: { readonly code?: unknown; readonly message?: unknown };
}

/**
 * `relais publish <channel> <json>`: one publication through the server API (`POST /api/publish`).
 * Prints the result (`{"offset":..,"epoch":..}`) on stdout; fails with a message naming the
 * cause: bad arguments, the server's error code and message, or an unreachable server.
 */
export async function publishCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { url: { type: 'string' }, 'idempotency-key': { type: 'string' } },
  });
  const [channel, json, ...extra] = positionals;
  if (channel === undefined || json === undefined || extra.length > 0) throw new Error(USAGE);
  let data: unknown;
  try {
    data = JSON.parse(json);
  } catch (err) {
    throw new Error(`relais publish: the data is not valid JSON (${err instanceof Error ? err.message : String(err)}): ${json}`);
  }
  const base = httpBaseUrl(values.url, process.env);
  const key = apiKey(process.env);
  const params = { channel, data, ...(values['idempotency-key'] !== undefined ? { idempotency_key: values['idempotency-key'] } : {}) };

  let response: Response;
  try {
    response = await fetch(`${base}/api/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': key },
      body: JSON.stringify(params),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw new Error(`relais publish: cannot reach Relais at ${base}: ${networkCause(err)}`);
  }
  const text = await response.text();
  let body: ApiBody | undefined;
  try {
    body = JSON.parse(text) as ApiBody;
  } catch {
    body = undefined;
  }
  if (body?.error !== undefined) {
    const { code, message } = body.error;
    throw new Error(`relais publish: the server refused (HTTP ${response.status}, error ${String(code)}): ${String(message)}`);
  }
  if (!response.ok || body === undefined || body.result === undefined) {
    throw new Error(`relais publish: unexpected answer from ${base}/api/publish (HTTP ${response.status}): ${text.slice(0, 200)}`);
  }
  console.log(JSON.stringify(body.result));
}

/** fetch() says "fetch failed"; the useful part (ECONNREFUSED, ENOTFOUND, a timeout) is the cause. */
function networkCause(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return `no answer within ${REQUEST_TIMEOUT_MS / 1000} s`;
    const cause: unknown = err.cause;
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code;
      return typeof code === 'string' && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
    }
    return err.message;
  }
  return String(err);
}
