/**
 * Wire formats of the Redis broker: what travels on its pub/sub channels and sits in its
 * streams and presence hashes.
 *
 * A publication is one compact JSON document, a two-element array whose second element is
 * the data verbatim, after a newline:
 *
 *   [{"offset":3,"epoch":"k2Jd8aQx","time":1717000000000,"info":{...},"tags":{...}},\n<data>]
 *
 * The publisher serializes info and tags once (one JSON.stringify) and embeds the data
 * text as it is; the publish script prepends offset, epoch and time without parsing
 * anything. A receiver parses only the small header: JSON.stringify never emits a raw
 * newline, so the first `\n` always ends it, and everything after it but the closing `]`
 * is the data exactly as it entered Relais. The data is neither parsed nor serialized again
 * on its way through Redis, and any JSON tool (redis-cli, a debugger) still reads the whole.
 *
 * Joins and leaves share the channel's bus channel as `{"type":"join","info":{...}}`: an
 * object, where a publication is an array, so the first byte tells them apart.
 */
import type { JsonText } from '../../core/json.js';
import type { ClientInfo, Publication } from '../../core/publication.js';
import type { ControlMessage } from '../broker.js';
import { nonNegativeInt, str } from '../wire_fields.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Everything of a publication frame after its time: the publisher's part, built once. */
export function publicationTail(data: JsonText, info?: ClientInfo, tags?: Readonly<Record<string, string>>): string {
  if (info === undefined && tags === undefined) return `},\n${data}]`;
  const extra = JSON.stringify({ info, tags });
  // `{"info":...}` -> `,"info":...`: the fields join the header the script opens.
  return `,${extra.slice(1, -1)}},\n${data}]`;
}

/**
 * The start of a publication frame. The publish script builds the same string in Lua from
 * the epochs it generates (base64url, nothing to escape); an epoch assigned upstream (a
 * persistent channel's store) is escaped here.
 */
export function publicationHead(offset: number, epoch: string, time: number): string {
  return `[{"offset":${offset},"epoch":${JSON.stringify(epoch)},"time":${time}`;
}

export type BusMessage =
  | { readonly type: 'pub'; readonly publication: Publication }
  | { readonly type: 'join' | 'leave'; readonly info: ClientInfo };

export function encodeJoinLeave(type: 'join' | 'leave', info: ClientInfo): string {
  return JSON.stringify({ type, info });
}

/** Throws on a message this broker did not write. */
export function decodeBusMessage(text: string): BusMessage {
  if (text.startsWith('[')) return { type: 'pub', publication: decodePublication(text) };
  const parsed = objectOf(JSON.parse(text), 'bus message');
  if (parsed.type !== 'join' && parsed.type !== 'leave') throw new Error('unknown bus message type');
  return { type: parsed.type, info: decodeClientInfo(parsed.info) };
}

/** Decodes a publication frame, from the bus or from a stream entry. Throws on anything else. */
export function decodePublication(text: string): Publication {
  const nl = text.indexOf('\n');
  // `[` + header + `,` before the newline; `]` closes the frame.
  if (!text.startsWith('[') || nl < 3 || text[nl - 1] !== ',' || !text.endsWith(']')) throw new Error('not a publication frame');
  const header = objectOf(JSON.parse(text.slice(1, nl - 1)), 'publication header');
  const pub: Mutable<Publication> = {
    offset: nonNegativeInt(header.offset, 'offset'),
    epoch: str(header.epoch, 'epoch'),
    data: text.slice(nl + 1, -1) as JsonText,
    time: nonNegativeInt(header.time, 'time'),
  };
  if (header.info !== undefined) pub.info = decodeClientInfo(header.info);
  if (header.tags !== undefined) pub.tags = decodeTags(header.tags);
  return pub;
}

/** Presence hash values. */
export function encodeClientInfo(info: ClientInfo): string {
  return JSON.stringify(info);
}

/** Accepts a parsed value (from a header) or a JSON text (from a presence hash). */
export function decodeClientInfo(value: unknown): ClientInfo {
  const v = objectOf(typeof value === 'string' ? JSON.parse(value) : value, 'client info');
  const info: Mutable<ClientInfo> = { user: str(v.user, 'user'), client: str(v.client, 'client') };
  if (v.connInfo !== undefined) info.connInfo = str(v.connInfo, 'connInfo') as JsonText;
  if (v.chanInfo !== undefined) info.chanInfo = str(v.chanInfo, 'chanInfo') as JsonText;
  return info;
}

export function encodeControl(message: ControlMessage): string {
  return JSON.stringify(message);
}

const CONTROL_TYPES: ReadonlySet<string> = new Set<ControlMessage['type']>([
  'disconnect',
  'subscribe',
  'unsubscribe',
  'message',
  'node',
  'survey',
  'survey_reply',
  'emulation',
  'feature',
]);

/**
 * Control messages come from Relais nodes of the same deployment (same prefix): the type is
 * checked so that a foreign publisher on the channel is dropped, the fields are trusted.
 */
export function decodeControl(text: string): ControlMessage {
  const parsed = objectOf(JSON.parse(text), 'control message');
  if (typeof parsed.type !== 'string' || !CONTROL_TYPES.has(parsed.type)) throw new Error('unknown control message type');
  return parsed as unknown as ControlMessage;
}

function decodeTags(value: unknown): Record<string, string> {
  const v = objectOf(value, 'tags');
  const tags: Record<string, string> = {};
  for (const [k, t] of Object.entries(v)) tags[k] = str(t, 'tag');
  return tags;
}

function objectOf(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Record<string, unknown>;
}
