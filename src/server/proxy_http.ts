import { setTimeout as sleep } from 'node:timers/promises';
import type { ProxyCaller } from '../core/client_proxy.js';
import { DisconnectError, RelaisError } from '../core/errors.js';
import type { JsonText } from '../core/json.js';

/** The proxies Relais calls, as metrics label them. */
export type ProxyKind = 'connect' | 'refresh' | 'subscribe' | 'sub_refresh' | 'publish' | 'rpc' | 'send';

/** Why a proxy request failed, as metrics label it. */
export type ProxyFailure = 'timeout' | 'unreachable' | 'http_status' | 'bad_answer' | 'error' | 'disconnect';

/** Counters of the proxy requests: plain numbers on the hot path, read by prom-client at scrape time. */
export class ProxyStats {
  readonly requests = new Map<ProxyKind, number>();
  /** Failures by proxy and reason; `error` and `disconnect` are the backend's own answers. */
  readonly failures = new Map<`${ProxyKind} ${ProxyFailure}`, number>();
  /** Replaced by the metrics endpoint with a histogram. */
  observeLatency: (proxy: ProxyKind, ms: number) => void = () => undefined;

  count(proxy: ProxyKind): void {
    this.requests.set(proxy, (this.requests.get(proxy) ?? 0) + 1);
  }

  fail(proxy: ProxyKind, reason: ProxyFailure): void {
    const key = `${proxy} ${reason}` as const;
    this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
  }
}

export interface ProxyTransportOptions {
  /** Most time for one call, retries included. */
  readonly timeoutMs: number;
  /** Attempts after the first when the backend could not be reached at all. */
  readonly retries: number;
  /** Added to every request; forwarded headers of the same name win. */
  readonly staticHeaders: Readonly<Record<string, string>>;
  readonly includeMeta: boolean;
  /**
   * Centrifugo's `binary_encoding`: payloads go as `b64data` (base64 of their bytes, the UTF-8
   * JSON text in Relais) instead of `data`, and requests say `encoding: "binary"`.
   */
  readonly binaryEncoding?: boolean;
  /** The connection's request headers this proxy forwards (lowercase); absent: every one the connection kept. */
  readonly httpHeaders?: readonly string[];
  readonly stats: ProxyStats;
}

/** What the backend answered: exactly what Centrifugo's proxy responses hold, `result` unparsed. */
export interface ProxyAnswer {
  readonly result: Record<string, unknown>;
}

const RETRY_PAUSE_MS = 50;
/** WebSocket close reasons are limited to 123 bytes; Centrifugo asks backends for 32. */
const MAX_REASON_BYTES = 123;

/**
 * Errors where the request certainly never reached the backend, so that sending it again
 * cannot make the backend act twice. A reset connection is not one: the backend may have
 * read the request (and stored a publication) before it went.
 */
function neverReached(err: unknown): boolean {
  const cause = err instanceof Error ? (err.cause as { code?: unknown } | undefined) : undefined;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Posts Centrifugo-shaped proxy requests to the app backend: JSON body, the caller's
 * forwarded headers, a deadline for the whole call. Resolves with the `result` object;
 * rejects with PROXY_UNAVAILABLE (temporary) when the backend cannot answer, PROXY_REFUSED
 * with the backend's code for its `error`, and a DisconnectError for its `disconnect`.
 */
export class ProxyTransport {
  constructor(private readonly options: ProxyTransportOptions) {}

  /**
   * The request body: the caller's fields, `fields`, then raw JSON members (data, meta) spliced
   * in unparsed; under binary encoding a payload member `x` goes as `b64x`, base64 of its bytes.
   */
  body(caller: ProxyCaller | undefined, fields: Record<string, unknown>, raw: Record<string, JsonText | undefined> = {}): string {
    const binary = this.options.binaryEncoding === true;
    const base: Record<string, unknown> = caller
      ? { client: caller.client, transport: caller.transport, protocol: caller.protocol ?? 'json', encoding: binary ? 'binary' : 'json', ...fields }
      : fields;
    const members: string[] = [];
    for (const [name, value] of Object.entries(raw)) {
      if (value === undefined) continue;
      members.push(binary ? `"b64${name}":"${Buffer.from(value, 'utf8').toString('base64')}"` : `${JSON.stringify(name)}:${value}`);
    }
    if (caller?.meta !== undefined && this.options.includeMeta) members.push(`"meta":${caller.meta}`);
    const head = JSON.stringify(base);
    if (members.length === 0) return head;
    return `${head.slice(0, -1)}${head.length > 2 ? ',' : ''}${members.join(',')}}`;
  }

  async call(proxy: ProxyKind, url: string, caller: ProxyCaller | undefined, body: string): Promise<ProxyAnswer> {
    const stats = this.options.stats;
    stats.count(proxy);
    const started = performance.now();
    try {
      return await this.attempt(proxy, url, caller, body);
    } finally {
      stats.observeLatency(proxy, performance.now() - started);
    }
  }

  private headers(caller: ProxyCaller | undefined): Record<string, string> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.options.staticHeaders)) headers[name.toLowerCase()] = value;
    // Transport headers win over the client's emulated ones, as in Centrifugo.
    if (caller?.emulatedHeaders) Object.assign(headers, caller.emulatedHeaders);
    const forwarded = this.options.httpHeaders;
    if (caller && !forwarded) Object.assign(headers, caller.headers);
    if (caller && forwarded) for (const name of forwarded) if (caller.headers[name] !== undefined) headers[name] = caller.headers[name];
    headers['content-type'] = 'application/json';
    return headers;
  }

  private async attempt(proxy: ProxyKind, url: string, caller: ProxyCaller | undefined, body: string): Promise<ProxyAnswer> {
    const { stats, timeoutMs, retries } = this.options;
    const signal = AbortSignal.timeout(timeoutMs);
    const headers = this.headers(caller);
    let response: Response | undefined;
    for (let attempt = 0; response === undefined; attempt++) {
      try {
        response = await fetch(url, { method: 'POST', headers, body, signal });
      } catch (err) {
        if (signal.aborted) {
          stats.fail(proxy, 'timeout');
          throw new RelaisError('PROXY_UNAVAILABLE', `app backend did not answer the ${proxy} proxy within ${timeoutMs} ms`, { cause: err });
        }
        if (attempt < retries && neverReached(err)) {
          await sleep(RETRY_PAUSE_MS, undefined, { signal }).catch(() => undefined);
          if (!signal.aborted) continue;
        }
        stats.fail(proxy, 'unreachable');
        throw new RelaisError('PROXY_UNAVAILABLE', `app backend unreachable for the ${proxy} proxy`, { cause: err });
      }
    }
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      stats.fail(proxy, 'http_status');
      throw new RelaisError('PROXY_UNAVAILABLE', `app backend answered HTTP ${response.status} to the ${proxy} proxy`);
    }
    let answer: unknown;
    try {
      answer = await response.json();
    } catch (err) {
      stats.fail(proxy, signal.aborted ? 'timeout' : 'bad_answer');
      throw new RelaisError('PROXY_UNAVAILABLE', `app backend answered the ${proxy} proxy with invalid JSON`, { cause: err });
    }
    return this.interpret(proxy, answer);
  }

  private interpret(proxy: ProxyKind, answer: unknown): ProxyAnswer {
    const stats = this.options.stats;
    if (!isObject(answer)) return this.badAnswer(proxy, 'not a JSON object');
    const { error, disconnect, result } = answer;
    if (error !== undefined && error !== null) {
      if (!isObject(error) || !Number.isInteger(error['code']) || (error['code'] as number) < 1 || (error['code'] as number) > 65_535) {
        return this.badAnswer(proxy, 'error without an integer code');
      }
      stats.fail(proxy, 'error');
      const message = typeof error['message'] === 'string' && error['message'] !== '' ? error['message'] : 'refused by the app backend';
      throw new RelaisError('PROXY_REFUSED', message, { wireCode: error['code'] as number });
    }
    if (disconnect !== undefined && disconnect !== null) {
      const code = isObject(disconnect) ? disconnect['code'] : undefined;
      if (!Number.isInteger(code) || (code as number) < 4000 || (code as number) > 4999) return this.badAnswer(proxy, 'disconnect code outside 4000-4999');
      stats.fail(proxy, 'disconnect');
      const reason = isObject(disconnect) && typeof disconnect['reason'] === 'string' ? disconnect['reason'] : '';
      throw new DisconnectError({ code: code as number, reason: Buffer.from(reason).subarray(0, MAX_REASON_BYTES).toString() });
    }
    if (result === undefined || result === null) return { result: {} };
    if (!isObject(result)) return this.badAnswer(proxy, '`result` is not an object');
    return { result };
  }

  private badAnswer(proxy: ProxyKind, why: string): never {
    this.options.stats.fail(proxy, 'bad_answer');
    throw new RelaisError('PROXY_UNAVAILABLE', `app backend answered the ${proxy} proxy with an unexpected shape: ${why}`);
  }
}
