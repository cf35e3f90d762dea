/**
 * The JSON flavour of the Centrifugo client protocol v2: one frame holds one or more
 * commands (or replies) separated by '\n'. Decoding validates every field a command uses;
 * encoding embeds JSON payloads verbatim (they are validated where they enter Relais).
 */
import type { DecodedCommand, ProtocolCodec } from './codec.js';
import { SharedRuns } from './shared_runs.js';
import {
  COMMAND_METHODS,
  type Command,
  type ErrorWire,
  type FilterNode,
  type PushMessage,
  type ReplyResult,
  type SubscribeResultWire,
  type WirePublication,
} from './types.js';

/** A JSON document already serialized: written into frames as is. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** What one line of a frame decoded to. */
export type DecodedLine = DecodedCommand;

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
  const delta = str(r, 'delta', false);
  if (delta !== undefined) req.delta = delta;
  const type = int(r, 'type');
  if (type !== undefined) req.type = type;
  if (r['tf'] !== undefined && r['tf'] !== null) req.tf = filterNode(r['tf'], 0);
  unsupported(r, ['phase', 'cursor', 'limit', 'asc'], 'map subscriptions are not supported');
  return req;
}

/** Deeper filters are refused: evaluating one must stay cheap and never exhaust the stack. */
export const MAX_FILTER_DEPTH = 8;

function filterNode(value: unknown, depth: number): FilterNode {
  if (depth >= MAX_FILTER_DEPTH) throw new FieldError(`field "tf" is nested deeper than ${MAX_FILTER_DEPTH} levels`);
  if (!isPlain(value)) throw new FieldError('field "tf" must be an object (a filter node)');
  const node: FilterNode = {};
  for (const key of ['op', 'key', 'cmp', 'val'] as const) {
    const v = str(value, key, false);
    if (v !== undefined) node[key] = v;
  }
  const vals = value['vals'];
  if (vals !== undefined && vals !== null) {
    if (!Array.isArray(vals) || !vals.every((v) => typeof v === 'string')) throw new FieldError('field "tf.vals" must be an array of strings');
    node.vals = vals;
  }
  const nodes = value['nodes'];
  if (nodes !== undefined && nodes !== null) {
    if (!Array.isArray(nodes)) throw new FieldError('field "tf.nodes" must be an array of filter nodes');
    node.nodes = nodes.map((n) => filterNode(n, depth + 1));
  }
  return node;
}

/**
 * A filter node given as a JSON value (the SSE `tf` parameter): its shape checked as in a
 * subscribe command. Throws an Error naming the fault.
 */
export function decodeFilterNode(value: unknown): FilterNode {
  return filterNode(value, 0);
}

/** Fields of the protocol Relais does not serve: set to anything but their default, they are refused. */
function unsupported(obj: Plain, keys: readonly string[], why: string): void {
  for (const key of keys) {
    const v = obj[key];
    if (v === undefined || v === null || v === 0 || v === '' || v === false) continue;
    throw new UnsupportedError(`field "${key}": ${why}`);
  }
}

class UnsupportedError extends Error {}

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
      unsupported(r, ['flag'], 'no connection-level feature flags are supported');
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
      unsupported(r, ['type', 'key', 'removed'], 'map publications are not supported');
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
      unsupported(r, ['type', 'signature'], 'item tracking is not supported');
      if (Array.isArray(r['items']) && r['items'].length > 0) throw new UnsupportedError('field "items": item tracking is not supported');
      if (Array.isArray(r['untrack_keys']) && r['untrack_keys'].length > 0) throw new UnsupportedError('field "untrack_keys": item tracking is not supported');
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
    if (err instanceof UnsupportedError) return invalidOrMalformed(id, 'unsupported', `${method}: ${err.message}`);
    throw err;
  }
}

function invalidOrMalformed(id: number, code: 'bad_request' | 'method_not_found' | 'unsupported', message: string): DecodedLine {
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

const plainPublications = new WeakMap<WirePublication, string>();
const fullPublications = new WeakMap<WirePublication, string>();

/**
 * A publication for a reply, encoded once per publication object: a thousand clients
 * recovering the same missed publications share one encoding. Under delta compression the
 * payload travels as a JSON string (the client applies deltas to its bytes).
 */
function replyPublication(pub: WirePublication, escaped: boolean): string {
  const cache = escaped ? fullPublications : plainPublications;
  let encoded = cache.get(pub);
  if (encoded === undefined) {
    encoded = escaped ? encodePublicationAs(pub, JSON.stringify(pub.data), false) : encodePublication(pub);
    cache.set(pub, encoded);
  }
  return encoded;
}

/** Reply publications joined, shared between replies; one cache per form (payloads as JSON or as strings). */
const plainRuns = new SharedRuns<string>((pubs) => pubs.map((p) => replyPublication(p, false)).join(','), (run, rest) => `${run},${rest}`, '');
const fullRuns = new SharedRuns<string>((pubs) => pubs.map((p) => replyPublication(p, true)).join(','), (run, rest) => `${run},${rest}`, '');

function replyPublications(publications: readonly WirePublication[], escaped: boolean): string {
  return (escaped ? fullRuns : plainRuns).of(publications);
}

function encodePublicationAs(pub: WirePublication, data: string, delta: boolean): string {
  let out = `{"data":${data}`;
  if (pub.info) out += `,"info":${encodeClientInfo(pub.info)}`;
  if (pub.offset > 0) out += `,"offset":${pub.offset}`;
  if (pub.tags) out += `,"tags":${JSON.stringify(pub.tags)}`;
  if (delta) out += ',"delta":true';
  return `${out}}`;
}

/** Adds a member whose value is JSON text as it is (custom `data`) to an encoded object. */
function withRawMember(out: string, name: string, json: string | undefined): string {
  if (json === undefined) return out;
  return `${out.slice(0, -1)}${out.length > 2 ? ',' : ''}${JSON.stringify(name)}:${json}}`;
}

function encodeSubscribeResult(sub: SubscribeResultWire): string {
  const { publications, data, ...rest } = sub;
  let out = JSON.stringify(rest);
  if (publications && publications.length > 0) {
    const escaped = sub.delta === true;
    out = `${out.slice(0, -1)}${out.length > 2 ? ',' : ''}"publications":[${replyPublications(publications, escaped)}]}`;
  }
  return withRawMember(out, 'data', data);
}

function encodeResultBody(reply: ReplyResult): string {
  switch (reply.method) {
    case 'connect': {
      const { subs, data, ...rest } = reply.result;
      let out = JSON.stringify(rest);
      if (subs) {
        const entries = Object.entries(subs).map(([channel, sub]) => `${JSON.stringify(channel)}:${encodeSubscribeResult(sub)}`);
        out = `${out.slice(0, -1)},"subs":{${entries.join(',')}}}`;
      }
      return withRawMember(out, 'data', data);
    }
    case 'subscribe':
      return encodeSubscribeResult(reply.result);
    case 'history': {
      const { publications, epoch, offset } = reply.result;
      return `{"publications":[${replyPublications(publications, false)}],"epoch":${JSON.stringify(epoch)},"offset":${offset}}`;
    }
    case 'presence': {
      const entries = Object.entries(reply.result.presence).map(([id, info]) => `${JSON.stringify(id)}:${encodeClientInfo(info)}`);
      return `{"presence":{${entries.join(',')}}}`;
    }
    case 'rpc':
      return reply.result.data === undefined ? '{}' : `{"data":${reply.result.data}}`;
    default:
      return JSON.stringify(reply.result);
  }
}

function encodeJsonPush(push: PushMessage): string {
  switch (push.type) {
    case 'pub': {
      if (push.form === 'plain') return encodePublicationPush(push.channel, push.pub);
      const pub =
        push.form === 'delta'
          ? encodePublicationAs(push.pub, JSON.stringify(new TextDecoder().decode(push.patch)), true)
          : encodePublicationAs(push.pub, JSON.stringify(push.pub.data), false);
      return `{"push":{"channel":${JSON.stringify(push.channel)},"pub":${pub}}}`;
    }
    case 'join':
      return encodeJoinPush(push.channel, push.info);
    case 'leave':
      return encodeLeavePush(push.channel, push.info);
    case 'unsubscribe':
      return encodeUnsubscribePush(push.channel, push.code, push.reason);
    case 'subscribe':
      return `{"push":{"channel":${JSON.stringify(push.channel)},"subscribe":${encodeSubscribeResult(push.sub)}}}`;
    case 'message':
      return encodeMessagePush(push.data);
    case 'disconnect':
      return encodeDisconnectPush(push.code, push.reason);
    case 'refresh':
      return encodeRefreshPush(push.expires, push.ttl);
  }
}

/** The JSON protocol: one command or reply per line, text frames. */
export const jsonCodec: ProtocolCodec = {
  name: 'json',
  binary: false,
  decodeFrame(frame) {
    const text = typeof frame === 'string' ? frame : new TextDecoder().decode(frame);
    const out: DecodedCommand[] = [];
    for (const line of splitFrame(text)) {
      const decoded = decodeLine(line);
      out.push(decoded);
      if (decoded.kind === 'malformed') break;
    }
    return out;
  },
  encodeReply(id, reply) {
    return `{"id":${id},${JSON.stringify(reply.method)}:${encodeResultBody(reply)}}`;
  },
  encodeError,
  encodePush: encodeJsonPush,
  ping: PING_FRAME,
};
