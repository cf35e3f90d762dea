/**
 * Wire formats of the NATS broker. A message is a JSON header line, then `\n`, then the
 * publication's data verbatim: the data was serialized once where it entered Relais and is
 * never parsed or serialized again on its way through NATS (JSON.stringify never emits a raw
 * newline, so the first `\n` always ends the header).
 */
import type { JsonText } from '../../core/json.js';
import type { ClientInfo, Publication } from '../../core/publication.js';
import { nonNegativeInt, str } from '../wire_fields.js';

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One message of a channel's history subject. */
export type StoredEntry =
  | {
      /** A publication. */
      readonly kind: 'pub';
      readonly offset: number;
      readonly epoch: string;
      /** Publication time, Unix ms (publisher's clock). */
      readonly time: number;
      /** History TTL of this publication, ms. */
      readonly ttl: number;
      /** History size of the channel when it was published: the window readers honour. */
      readonly size: number;
      /** How long the stream's position outlives this publication, ms. */
      readonly metaTtl: number;
      readonly info?: ClientInfo;
      readonly tags?: Readonly<Record<string, string>>;
      readonly data: JsonText;
    }
  | {
      /**
       * A position without publication: the epoch of a stream created by a read (offset 0),
       * or the position kept by removeHistory. Nothing at or before `offset` is history.
       */
      readonly kind: 'mark';
      readonly offset: number;
      readonly epoch: string;
      readonly time: number;
      readonly metaTtl: number;
    };

/** One message of a channel's fan-out subject. */
export type FanOutMessage =
  /** `upstream`: positioned before the broker (PublishOptions.position), not ordered by it. */
  | { readonly type: 'pub'; readonly publication: Publication; readonly upstream?: boolean }
  | { readonly type: 'join'; readonly info: ClientInfo }
  | { readonly type: 'leave'; readonly info: ClientInfo };

export function encodeStoredEntry(entry: StoredEntry): Uint8Array {
  if (entry.kind === 'mark') {
    const { kind, offset, epoch, time, metaTtl } = entry;
    return encoder.encode(JSON.stringify({ kind, offset, epoch, time, metaTtl }));
  }
  const { data, ...header } = entry;
  return encoder.encode(`${JSON.stringify(header)}\n${data}`);
}

/** Throws on a message this broker did not write. */
export function decodeStoredEntry(bytes: Uint8Array): StoredEntry {
  const { header, data } = split(bytes);
  const kind = header.kind;
  const offset = nonNegativeInt(header.offset, 'offset');
  const epoch = str(header.epoch, 'epoch');
  const time = nonNegativeInt(header.time, 'time');
  const metaTtl = nonNegativeInt(header.metaTtl, 'metaTtl');
  if (kind === 'mark') return { kind, offset, epoch, time, metaTtl };
  if (kind !== 'pub' || data === undefined) throw new Error('not a history entry');
  return {
    kind,
    offset,
    epoch,
    time,
    ttl: nonNegativeInt(header.ttl, 'ttl'),
    size: nonNegativeInt(header.size, 'size'),
    metaTtl,
    data,
    ...(header.info !== undefined ? { info: clientInfo(header.info) } : {}),
    ...(header.tags !== undefined ? { tags: tags(header.tags) } : {}),
  };
}

export function encodeFanOut(message: FanOutMessage): Uint8Array {
  if (message.type !== 'pub') return encoder.encode(JSON.stringify({ type: message.type, info: message.info }));
  const { data, ...rest } = message.publication;
  return encoder.encode(`${JSON.stringify({ type: 'pub', ...(message.upstream ? { upstream: true } : {}), ...rest })}\n${data}`);
}

/** Throws on a message this broker did not write. */
export function decodeFanOut(bytes: Uint8Array): FanOutMessage {
  const { header, data } = split(bytes);
  switch (header.type) {
    case 'join':
    case 'leave':
      return { type: header.type, info: clientInfo(header.info) };
    case 'pub': {
      if (data === undefined) throw new Error('publication without data');
      const pub: { -readonly [K in keyof Publication]: Publication[K] } = {
        offset: nonNegativeInt(header.offset, 'offset'),
        epoch: str(header.epoch, 'epoch'),
        data,
        time: nonNegativeInt(header.time, 'time'),
      };
      if (header.info !== undefined) pub.info = clientInfo(header.info);
      if (header.tags !== undefined) pub.tags = tags(header.tags);
      return header.upstream === true ? { type: 'pub', publication: pub, upstream: true } : { type: 'pub', publication: pub };
    }
    default:
      throw new Error('unknown fan-out message type');
  }
}

/** The publication a stored entry describes. */
export function publicationOf(entry: StoredEntry & { kind: 'pub' }): Publication {
  const pub: { -readonly [K in keyof Publication]: Publication[K] } = {
    offset: entry.offset,
    epoch: entry.epoch,
    data: entry.data,
    time: entry.time,
  };
  if (entry.info) pub.info = entry.info;
  if (entry.tags) pub.tags = entry.tags;
  return pub;
}

function split(bytes: Uint8Array): { header: Record<string, unknown>; data: JsonText | undefined } {
  const nl = bytes.indexOf(NEWLINE);
  const head = decoder.decode(nl < 0 ? bytes : bytes.subarray(0, nl));
  const parsed: unknown = JSON.parse(head);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('message header is not an object');
  const data = nl < 0 ? undefined : (decoder.decode(bytes.subarray(nl + 1)) as JsonText);
  return { header: parsed as Record<string, unknown>, data };
}


function clientInfo(value: unknown): ClientInfo {
  if (typeof value !== 'object' || value === null) throw new Error('bad client info');
  const v = value as Record<string, unknown>;
  const info: { -readonly [K in keyof ClientInfo]: ClientInfo[K] } = { user: str(v.user, 'user'), client: str(v.client, 'client') };
  if (v.connInfo !== undefined) info.connInfo = str(v.connInfo, 'connInfo') as JsonText;
  if (v.chanInfo !== undefined) info.chanInfo = str(v.chanInfo, 'chanInfo') as JsonText;
  return info;
}

function tags(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('bad tags');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) out[k] = str(v, 'tag');
  return out;
}

/** Exported for the presence manager, which stores ClientInfo in KV values. */
export const parseClientInfo = clientInfo;
