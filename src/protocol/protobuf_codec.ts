/**
 * The Protobuf flavour of the Centrifugo client protocol v2: a frame holds one or more
 * varint length-delimited Commands (client) or Replies (server). Payloads (`data`) are
 * bytes on this wire; Relais carries JSON documents, so a payload a client sends must be
 * UTF-8 JSON (refused with BAD_REQUEST otherwise) and the payloads it receives are the
 * UTF-8 bytes of JSON documents.
 */
import protobuf from 'protobufjs';
import type { DecodedCommand, ProtocolCodec } from './codec.js';
import { MAX_FILTER_DEPTH } from './json_codec.js';
import { CLIENT_PROTO } from './protobuf_schema.js';
import { SharedRuns } from './shared_runs.js';
import {
  COMMAND_METHODS,
  type Command,
  type ConnectRequest,
  type ErrorWire,
  type FilterNode,
  type PushMessage,
  type ReplyResult,
  type SubscribeRequest,
  type SubscribeResultWire,
  type WireClientInfo,
  type WirePublication,
} from './types.js';

const root = protobuf.parse(CLIENT_PROTO, { keepCase: true }).root;
const CommandType = root.lookupType('centrifugal.centrifuge.protocol.Command');
const ReplyType = root.lookupType('centrifugal.centrifuge.protocol.Reply');
const SubscribeResultType = root.lookupType('centrifugal.centrifuge.protocol.SubscribeResult');
/** Key (field number and wire type 2, length-delimited) of `Reply.subscribe`. */
const SUBSCRIBE_KEY = (fieldId(ReplyType, 'subscribe') << 3) | 2;

function fieldId(type: protobuf.Type, name: string): number {
  const field = type.fields[name];
  if (!field) throw new Error(`the client schema has no ${type.name}.${name}`);
  return field.id;
}

type Msg = Record<string, unknown>;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const EMPTY = new Uint8Array(0);

class FieldError extends Error {}
class UnsupportedError extends Error {}

/** A uint64/int64 as decoded (a Long where long.js is present) as a safe integer. */
function toInt(value: unknown, field: string): number {
  if (value === undefined || value === null) return 0;
  const n = typeof value === 'object' && 'toNumber' in value ? (value as { toNumber(): number }).toNumber() : Number(value);
  if (!Number.isSafeInteger(n)) throw new FieldError(`field "${field}" is out of range`);
  return n;
}

function bytes(value: unknown): Uint8Array {
  return value instanceof Uint8Array ? value : EMPTY;
}

/** A payload as the JSON codec hands it over: the parsed document, undefined when empty. */
function jsonPayload(value: unknown, field: string, required: boolean): unknown {
  const data = bytes(value);
  if (data.length === 0) {
    if (required) throw new FieldError(`field "${field}" is required`);
    return undefined;
  }
  try {
    return JSON.parse(strictUtf8.decode(data));
  } catch {
    throw new FieldError(`field "${field}" must be UTF-8 JSON: Relais carries JSON payloads`);
  }
}

function str(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function refuseSet(msg: Msg, keys: readonly string[], why: string): void {
  for (const key of keys) {
    const v = msg[key];
    if (v === undefined || v === null || v === '' || v === false) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (typeof v === 'number' && v === 0) continue;
    if (typeof v === 'object' && 'toNumber' in v && (v as { toNumber(): number }).toNumber() === 0) continue;
    throw new UnsupportedError(`field "${key}": ${why}`);
  }
}

function filterNode(msg: Msg, depth: number): FilterNode {
  if (depth >= MAX_FILTER_DEPTH) throw new FieldError(`field "tf" is nested deeper than ${MAX_FILTER_DEPTH} levels`);
  const node: FilterNode = {};
  for (const key of ['op', 'key', 'cmp', 'val'] as const) {
    const v = str(msg[key]);
    if (v !== '') node[key] = v;
  }
  const vals = msg['vals'] as string[] | undefined;
  if (vals && vals.length > 0) node.vals = [...vals];
  const nodes = msg['nodes'] as Msg[] | undefined;
  if (nodes && nodes.length > 0) node.nodes = nodes.map((n) => filterNode(n, depth + 1));
  return node;
}

function decodeSubscribe(r: Msg, channel?: string): SubscribeRequest {
  const req: SubscribeRequest = { channel: channel ?? str(r['channel']) };
  const token = str(r['token']);
  if (token !== '') req.token = token;
  if (r['recover'] === true) req.recover = true;
  const epoch = str(r['epoch']);
  if (epoch !== '') req.epoch = epoch;
  const offset = toInt(r['offset'], 'offset');
  if (offset > 0) req.offset = offset;
  const data = jsonPayload(r['data'], 'data', false);
  if (data !== undefined) req.data = data;
  if (r['positioned'] === true) req.positioned = true;
  if (r['recoverable'] === true) req.recoverable = true;
  if (r['join_leave'] === true) req.join_leave = true;
  const flag = toInt(r['flag'], 'flag');
  if (flag !== 0) req.flag = flag;
  const delta = str(r['delta']);
  if (delta !== '') req.delta = delta;
  const type = toInt(r['type'], 'type');
  if (type !== 0) req.type = type;
  if (r['tf']) req.tf = filterNode(r['tf'] as Msg, 0);
  refuseSet(r, ['phase', 'cursor', 'limit', 'asc'], 'map subscriptions are not supported');
  return req;
}

function decodeRequest(method: (typeof COMMAND_METHODS)[number], r: Msg, id: number): Command {
  switch (method) {
    case 'connect': {
      const request: ConnectRequest = {};
      const token = str(r['token']);
      if (token !== '') request.token = token;
      const data = jsonPayload(r['data'], 'data', false);
      if (data !== undefined) request.data = data;
      const name = str(r['name']);
      if (name !== '') request.name = name;
      const version = str(r['version']);
      if (version !== '') request.version = version;
      const headers = r['headers'] as Record<string, string> | undefined;
      if (headers && Object.keys(headers).length > 0) request.headers = { ...headers };
      refuseSet(r, ['flag'], 'no connection-level feature flags are supported');
      const subs = r['subs'] as Record<string, Msg> | undefined;
      if (subs && Object.keys(subs).length > 0) {
        request.subs = {};
        for (const [channel, sub] of Object.entries(subs)) request.subs[channel] = decodeSubscribe(sub, channel);
      }
      return { id, method, request };
    }
    case 'subscribe':
      return { id, method, request: decodeSubscribe(r) };
    case 'unsubscribe':
    case 'presence':
    case 'presence_stats':
      return { id, method, request: { channel: str(r['channel']) } };
    case 'publish':
      refuseSet(r, ['type', 'key', 'removed'], 'map publications are not supported');
      return { id, method, request: { channel: str(r['channel']), data: jsonPayload(r['data'], 'data', true) } };
    case 'history': {
      const request: Extract<Command, { method: 'history' }>['request'] = { channel: str(r['channel']) };
      const limit = r['limit'];
      if (typeof limit === 'number' && limit !== 0) request.limit = limit;
      if (r['reverse'] === true) request.reverse = true;
      const since = r['since'] as Msg | null | undefined;
      if (since) request.since = { offset: toInt(since['offset'], 'since.offset'), epoch: str(since['epoch']) };
      return { id, method, request };
    }
    case 'ping':
      return { id, method, request: {} };
    case 'send':
      return { id, method, request: { data: jsonPayload(r['data'], 'data', false) } };
    case 'rpc': {
      const request: Extract<Command, { method: 'rpc' }>['request'] = { data: jsonPayload(r['data'], 'data', false) };
      const m = str(r['method']);
      if (m !== '') request.method = m;
      return { id, method, request };
    }
    case 'refresh':
      return { id, method, request: { token: str(r['token']) } };
    case 'sub_refresh':
      refuseSet(r, ['items', 'untrack_keys', 'type', 'signature'], 'item tracking is not supported');
      return { id, method, request: { channel: str(r['channel']), token: str(r['token']) } };
  }
}

function decodeCommand(msg: Msg): DecodedCommand {
  const id = typeof msg['id'] === 'number' ? msg['id'] : 0;
  let method: (typeof COMMAND_METHODS)[number] | undefined;
  for (const m of COMMAND_METHODS) {
    if (msg[m] === undefined || msg[m] === null) continue;
    if (method !== undefined) return answerable(id, 'bad_request', 'a command must carry exactly one request');
    method = m;
  }
  if (method === undefined) {
    if (id === 0) return { kind: 'command', command: { id: 0, method: 'pong', request: {} } };
    return answerable(id, 'method_not_found', 'unknown command');
  }
  if (id === 0 && method !== 'send') return { kind: 'malformed', message: `command "${method}" needs an id` };
  try {
    return { kind: 'command', command: decodeRequest(method, msg[method] as Msg, id) };
  } catch (err) {
    if (err instanceof FieldError) return answerable(id, 'bad_request', `${method}: ${err.message}`);
    if (err instanceof UnsupportedError) return answerable(id, 'unsupported', `${method}: ${err.message}`);
    throw err;
  }
}

function answerable(id: number, code: 'bad_request' | 'method_not_found' | 'unsupported', message: string): DecodedCommand {
  return id > 0 ? { kind: 'invalid', id, code, message } : { kind: 'malformed', message };
}

// --- encoding ---------------------------------------------------------------

function clientInfo(info: WireClientInfo): Msg {
  const out: Msg = { user: info.user, client: info.client };
  if (info.connInfo !== undefined) out['conn_info'] = utf8.encode(info.connInfo);
  if (info.chanInfo !== undefined) out['chan_info'] = utf8.encode(info.chanInfo);
  return out;
}

const replyPublications = new WeakMap<WirePublication, Msg>();

function publication(pub: WirePublication, data?: Uint8Array): Msg {
  const out: Msg = { data: data ?? utf8.encode(pub.data) };
  if (pub.info) out['info'] = clientInfo(pub.info);
  if (pub.offset > 0) out['offset'] = pub.offset;
  if (pub.tags) out['tags'] = pub.tags;
  return out;
}

/** A publication of a reply, converted once per publication object (recovery replays are shared). */
function replyPublication(pub: WirePublication): Msg {
  let out = replyPublications.get(pub);
  if (!out) {
    out = publication(pub);
    replyPublications.set(pub, out);
  }
  return out;
}

function subscribeResult(sub: SubscribeResultWire): Msg {
  const { publications, data, ...rest } = sub;
  const out: Msg = { ...rest };
  if (data !== undefined) out['data'] = utf8.encode(data);
  if (publications && publications.length > 0) out['publications'] = publications.map(replyPublication);
  return out;
}

/**
 * `SubscribeResult.publications` of a run, encoded (field key, length, message, each) and
 * shared between replies as the JSON codec shares its text. Protobuf lets a message's fields
 * come in any order and a repeated field's elements follow one another, so the run is
 * appended to the rest of each result as bytes.
 */
const publicationRuns = new SharedRuns<Uint8Array>(
  (pubs) => SubscribeResultType.encode({ publications: pubs.map(replyPublication) }).finish(),
  (run, rest) => Buffer.concat([run, rest]),
  EMPTY,
);

/** A length-delimited Reply to a subscribe whose publications are appended as a shared run. */
function encodeSubscribeReply(id: number, sub: SubscribeResultWire): Uint8Array {
  const { publications, ...rest } = sub;
  const head = SubscribeResultType.encode(subscribeResult(rest)).finish();
  const run = publicationRuns.of(publications ?? []);
  const idField = ReplyType.encode({ id }).finish();
  const key = protobuf.Writer.create().uint32(SUBSCRIBE_KEY).uint32(head.length + run.length).finish();
  const delimiter = protobuf.Writer.create().uint32(idField.length + key.length + head.length + run.length).finish();
  return Buffer.concat([delimiter, idField, key, head, run]);
}

function resultMessage(reply: ReplyResult): Msg {
  switch (reply.method) {
    case 'connect': {
      const { subs, data, ...rest } = reply.result;
      const out: Msg = { ...rest };
      if (data !== undefined) out['data'] = utf8.encode(data);
      if (subs) out['subs'] = Object.fromEntries(Object.entries(subs).map(([channel, sub]) => [channel, subscribeResult(sub)]));
      return out;
    }
    case 'subscribe':
      return subscribeResult(reply.result);
    case 'history':
      return { ...reply.result, publications: reply.result.publications.map(replyPublication) };
    case 'presence':
      return { presence: Object.fromEntries(Object.entries(reply.result.presence).map(([id, info]) => [id, clientInfo(info)])) };
    case 'rpc':
      return reply.result.data === undefined ? {} : { data: utf8.encode(reply.result.data) };
    default:
      return { ...reply.result };
  }
}

function pushMessage(push: PushMessage): Msg {
  switch (push.type) {
    case 'pub':
      if (push.form === 'delta') return { channel: push.channel, pub: { ...publication(push.pub, push.patch), delta: true } };
      return { channel: push.channel, pub: publication(push.pub) };
    case 'join':
    case 'leave':
      return { channel: push.channel, [push.type]: { info: clientInfo(push.info) } };
    case 'unsubscribe':
      return { channel: push.channel, unsubscribe: { code: push.code, reason: push.reason } };
    case 'subscribe': {
      const { publications: _none, ...sub } = push.sub;
      return { channel: push.channel, subscribe: sub };
    }
    case 'message':
      return { message: { data: utf8.encode(push.data) } };
    case 'disconnect':
      return { disconnect: { code: push.code, reason: push.reason } };
    case 'refresh':
      return { refresh: { expires: push.expires, ttl: push.ttl } };
  }
}

function encodeReplyMessage(reply: Msg): Uint8Array {
  return ReplyType.encodeDelimited(reply).finish();
}

/** The Protobuf protocol: varint length-delimited messages, binary frames. */
export const protobufCodec: ProtocolCodec = {
  name: 'protobuf',
  binary: true,
  decodeFrame(frame) {
    const data = typeof frame === 'string' ? utf8.encode(frame) : frame;
    const reader = protobuf.Reader.create(data);
    const out: DecodedCommand[] = [];
    while (reader.pos < reader.len) {
      let msg: Msg;
      try {
        msg = CommandType.decodeDelimited(reader);
      } catch {
        out.push({ kind: 'malformed', message: 'not a length-delimited Protobuf Command' });
        break;
      }
      const decoded = decodeCommand(msg);
      out.push(decoded);
      if (decoded.kind === 'malformed') break;
    }
    return out;
  },
  encodeReply(id, reply) {
    if (reply.method === 'subscribe' && (reply.result.publications?.length ?? 0) > 0) return encodeSubscribeReply(id, reply.result);
    return encodeReplyMessage({ id, [reply.method]: resultMessage(reply) });
  },
  encodeError(id, error: ErrorWire) {
    return encodeReplyMessage({ id, error });
  },
  encodePush(push) {
    return encodeReplyMessage({ push: pushMessage(push) });
  },
  // An empty Reply, length-delimited: its length, 0.
  ping: new Uint8Array([0]),
};
