/**
 * The JSON flavour of the Centrifugo client protocol v2: one frame holds one or more
 * commands (or replies) separated by '\n'. Decoding validates every field a command uses;
 * encoding embeds JSON payloads verbatim (they are validated where they enter Relais).
 */
import { COMMAND_METHODS, type Command, type ErrorWire } from './types.js';

/** A JSON document already serialized: written into frames as is. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** What one line of a frame decoded to. */
export type DecodedLine =
  | { readonly kind: 'command'; readonly command: Command }
  /** A command we can answer with an error reply (its id is known). */
  | { readonly kind: 'invalid'; readonly id: number; readonly code: 'bad_request' | 'method_not_found'; readonly message: string }
  /** A line that cannot be answered: not JSON, not an object, or no usable id. Ends the connection. */
  | { readonly kind: 'malformed'; readonly message: string };

type Plain = Record<string, unknown>;

const MAX_ID = 0xffff_ffff;

function isPlain(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

class FieldError extends Error {}

function str(obj: Plain, key: string, required: true): string;
function str(obj: Plain, key: string, required: false): string | undefined;
function str(obj: Plain, key: string, required: boolean): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (required) throw new FieldError(`field "${key}" is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new FieldError(`field "${key}" must be a string`);
  return v;
}

function bool(obj: Plain, key: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new FieldError(`field "${key}" must be a boolean`);
  return v;
}

function uint(obj: Plain, key: string): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  // 64-bit offsets arrive as numbers or, from some SDKs, as decimal strings.
  const n = typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new FieldError(`field "${key}" must be a non-negative integer`);
  }
  return n;
}

function int(obj: Plain, key: string): number | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new FieldError(`field "${key}" must be an integer`);
  return v;
}

function stringMap(obj: Plain, key: string): Record<string, string> | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (!isPlain(v) || !Object.values(v).every((x) => typeof x === 'string')) {
    throw new FieldError(`field "${key}" must be an object of strings`);
  }
  return v as Record<string, string>;
}

function decodeSubscribe(r: Plain): Extract<Command, { method: 'subscribe' }>['request'] {
  const req: Extract<Command, { method: 'subscribe' }>['request'] = { channel: str(r, 'channel', true) };
  const token = str(r, 'token', false);
  if (token !== undefined) req.token = token;
  const recover = bool(r, 'recover');
  if (recover !== undefined) req.recover = recover;
  const epoch = str(r, 'epoch', false);
  if (epoch !== undefined) req.epoch = epoch;
  const offset = uint(r, 'offset');
  if (offset !== undefined) req.offset = offset;
  if (r['data'] !== undefined) req.data = r['data'];
  const positioned = bool(r, 'positioned');
  if (positioned !== undefined) req.positioned = positioned;
  const recoverable = bool(r, 'recoverable');
  if (recoverable !== undefined) req.recoverable = recoverable;
  const joinLeave = bool(r, 'join_leave');
  if (joinLeave !== undefined) req.join_leave = joinLeave;
  const flag = int(r, 'flag');
  if (flag !== undefined) req.flag = flag;
  return req;
}

function decodeRequest(method: (typeof COMMAND_METHODS)[number], r: Plain, id: number): Command {
  switch (method) {
    case 'connect': {
      const request: Extract<Command, { method: 'connect' }>['request'] = {};
      const token = str(r, 'token', false);
      if (token !== undefined) request.token = token;
      if (r['data'] !== undefined) request.data = r['data'];
      const name = str(r, 'name', false);
      if (name !== undefined) request.name = name;
      const version = str(r, 'version', false);
      if (version !== undefined) request.version = version;
      const headers = stringMap(r, 'headers');
      if (headers) request.headers = headers;
      const subs = r['subs'];
      if (subs !== undefined && subs !== null) {
        if (!isPlain(subs)) throw new FieldError('field "subs" must be an object');
        request.subs = {};
        for (const [channel, sub] of Object.entries(subs)) {
          if (!isPlain(sub)) throw new FieldError('field "subs" must map channels to objects');
          request.subs[channel] = decodeSubscribe({ ...sub, channel });
        }
      }
      return { id, method, request };
    }
    case 'subscribe':
      return { id, method, request: decodeSubscribe(r) };
    case 'unsubscribe':
      return { id, method, request: { channel: str(r, 'channel', true) } };
    case 'publish':
      if (!('data' in r)) throw new FieldError('field "data" is required');
      return { id, method, request: { channel: str(r, 'channel', true), data: r['data'] } };
    case 'presence':
    case 'presence_stats':
      return { id, method, request: { channel: str(r, 'channel', true) } };
    case 'history': {
      const request: Extract<Command, { method: 'history' }>['request'] = { channel: str(r, 'channel', true) };
      const limit = int(r, 'limit');
      if (limit !== undefined) request.limit = limit;
      const reverse = bool(r, 'reverse');
      if (reverse !== undefined) request.reverse = reverse;
      const since = r['since'];
      if (since !== undefined && since !== null) {
        if (!isPlain(since)) throw new FieldError('field "since" must be an object');
        request.since = {};
        const offset = uint(since, 'offset');
        if (offset !== undefined) request.since.offset = offset;
        const epoch = str(since, 'epoch', false);
        if (epoch !== undefined) request.since.epoch = epoch;
      }
      return { id, method, request };
    }
    case 'ping':
      return { id, method, request: {} };
    case 'send':
      return { id, method, request: { data: r['data'] } };
    case 'rpc': {
      const request: Extract<Command, { method: 'rpc' }>['request'] = { data: r['data'] };
      const m = str(r, 'method', false);
      if (m !== undefined) request.method = m;
      return { id, method, request };
    }
    case 'refresh':
      return { id, method, request: { token: str(r, 'token', true) } };
    case 'sub_refresh':
      return { id, method, request: { channel: str(r, 'channel', true), token: str(r, 'token', true) } };
  }
}

/** Decodes one line of a frame. */
export function decodeLine(line: string): DecodedLine {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { kind: 'malformed', message: 'not valid JSON' };
  }
  if (!isPlain(parsed)) return { kind: 'malformed', message: 'a command must be a JSON object' };
  const rawId = parsed['id'] ?? 0;
  if (typeof rawId !== 'number' || !Number.isInteger(rawId) || rawId < 0 || rawId > MAX_ID) {
    return { kind: 'malformed', message: 'command id must be an unsigned 32-bit integer' };
  }
  const id = rawId;
  let method: (typeof COMMAND_METHODS)[number] | undefined;
  for (const m of COMMAND_METHODS) {
    const value = parsed[m];
    if (value === undefined || value === null) continue;
    if (method !== undefined) return invalidOrMalformed(id, 'bad_request', 'a command must carry exactly one request');
    method = m;
  }
  if (method === undefined) {
    // `{}` is the client's pong to a server ping.
    if (id === 0 && Object.keys(parsed).every((k) => k === 'id')) return { kind: 'command', command: { id: 0, method: 'pong', request: {} } };
    return invalidOrMalformed(id, 'method_not_found', 'unknown command');
  }
  if (id === 0 && method !== 'send') return { kind: 'malformed', message: `command "${method}" needs an id` };
  const request = parsed[method];
  if (!isPlain(request)) return invalidOrMalformed(id, 'bad_request', `"${method}" must be an object`);
  try {
    return { kind: 'command', command: decodeRequest(method, request, id) };
  } catch (err) {
    if (err instanceof FieldError) return invalidOrMalformed(id, 'bad_request', `${method}: ${err.message}`);
    throw err;
  }
}

function invalidOrMalformed(id: number, code: 'bad_request' | 'method_not_found', message: string): DecodedLine {
  return id > 0 ? { kind: 'invalid', id, code, message } : { kind: 'malformed', message };
}

/** Splits a frame into its non-empty lines. */
export function splitFrame(frame: string): string[] {
  if (!frame.includes('\n')) return frame.trim() === '' ? [] : [frame];
  return frame.split('\n').filter((l) => l.trim() !== '');
}

/** Serializes a value to JSON, writing RawJson parts verbatim. */
export function toWireJson(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map((v) => toWireJson(v === undefined ? null : v)).join(',')}]`;
  if (isPlain(value)) {
    const parts: string[] = [];
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined) continue;
      parts.push(`${JSON.stringify(k)}:${toWireJson(v)}`);
    }
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function encodeResult(id: number, method: string, result: unknown): string {
  return `{"id":${id},${JSON.stringify(method)}:${toWireJson(result)}}`;
}

export function encodeError(id: number, error: ErrorWire): string {
  return `{"id":${id},"error":${JSON.stringify(error)}}`;
}

/** The server's ping: an empty reply. The client answers `{}` when the connect result said `pong: true`. */
export const PING_FRAME = '{}';

/** Structural view of a publication (Relais' Publication matches it). */
export interface WirePublicationSource {
  readonly data: string;
  readonly offset: number;
  readonly info?: { readonly user: string; readonly client: string; readonly connInfo?: string; readonly chanInfo?: string };
  readonly tags?: Readonly<Record<string, string>>;
}

export function encodeClientInfo(info: NonNullable<WirePublicationSource['info']>): string {
  let out = `{"user":${JSON.stringify(info.user)},"client":${JSON.stringify(info.client)}`;
  if (info.connInfo !== undefined) out += `,"conn_info":${info.connInfo}`;
  if (info.chanInfo !== undefined) out += `,"chan_info":${info.chanInfo}`;
  return `${out}}`;
}

/** A publication as the protocol carries it, payload embedded verbatim. */
export function encodePublication(pub: WirePublicationSource): string {
  let out = `{"data":${pub.data}`;
  if (pub.info) out += `,"info":${encodeClientInfo(pub.info)}`;
  if (pub.offset > 0) out += `,"offset":${pub.offset}`;
  if (pub.tags) out += `,"tags":${JSON.stringify(pub.tags)}`;
  return `${out}}`;
}

export function encodePublicationPush(channel: string, pub: WirePublicationSource): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"pub":${encodePublication(pub)}}}`;
}

export function encodeJoinPush(channel: string, info: NonNullable<WirePublicationSource['info']>): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"join":{"info":${encodeClientInfo(info)}}}}`;
}

export function encodeLeavePush(channel: string, info: NonNullable<WirePublicationSource['info']>): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"leave":{"info":${encodeClientInfo(info)}}}}`;
}

export function encodeUnsubscribePush(channel: string, code: number, reason: string): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"unsubscribe":${JSON.stringify({ code, reason })}}}`;
}

export function encodeSubscribePush(channel: string, sub: unknown): string {
  return `{"push":{"channel":${JSON.stringify(channel)},"subscribe":${toWireJson(sub)}}}`;
}

export function encodeMessagePush(data: string): string {
  return `{"push":{"message":{"data":${data}}}}`;
}

export function encodeDisconnectPush(code: number, reason: string): string {
  return `{"push":{"disconnect":${JSON.stringify({ code, reason })}}}`;
}

export function encodeRefreshPush(expires: boolean, ttl: number): string {
  return `{"push":{"refresh":${JSON.stringify({ expires, ttl })}}}`;
}
