/** How both stores lay a message out in columns, and read it back. */
import { randomBytes } from 'node:crypto';
import type { JsonText } from '../core/json.js';
import type { ClientInfo } from '../core/publication.js';
import type { AppendRequest, StoredMessage } from './store.js';

/** A `messages` row as both dialects return it (PostgreSQL bigints arrive as strings). */
export interface MessageRow {
  readonly seq: number | string;
  readonly time: number | string;
  readonly data: string;
  readonly user_id: string | null;
  readonly client_id: string | null;
  readonly conn_info: string | null;
  readonly chan_info: string | null;
  readonly tags: string | null;
  readonly temp_id: string | null;
  readonly idem_key: string | null;
}

/** The column values of a request, in the order of the `messages` columns after channel and seq. */
export interface MessageColumns {
  readonly time: number;
  readonly data: string;
  readonly user_id: string | null;
  readonly client_id: string | null;
  readonly conn_info: string | null;
  readonly chan_info: string | null;
  readonly tags: string | null;
  readonly temp_id: string | null;
  readonly idem_key: string | null;
}

export function columnsOf(request: AppendRequest): MessageColumns {
  const info = request.info;
  return {
    time: request.time,
    data: request.data,
    // A publisher is stored when there is one; its presence is told by client_id.
    user_id: info ? info.user : null,
    client_id: info ? info.client : null,
    conn_info: info?.connInfo ?? null,
    chan_info: info?.chanInfo ?? null,
    tags: request.tags ? JSON.stringify(request.tags) : null,
    temp_id: request.tempId ?? null,
    idem_key: request.idempotencyKey ?? null,
  };
}

export function messageOfRow(channel: string, epoch: string, row: MessageRow): StoredMessage {
  let info: ClientInfo | undefined;
  if (row.client_id !== null) {
    info = {
      user: row.user_id ?? '',
      client: row.client_id,
      ...(row.conn_info !== null ? { connInfo: row.conn_info as JsonText } : {}),
      ...(row.chan_info !== null ? { chanInfo: row.chan_info as JsonText } : {}),
    };
  }
  return {
    channel,
    offset: Number(row.seq),
    epoch,
    data: row.data as JsonText,
    time: Number(row.time),
    ...(info ? { info } : {}),
    ...(row.tags !== null ? { tags: JSON.parse(row.tags) as Record<string, string> } : {}),
    ...(row.temp_id !== null ? { tempId: row.temp_id } : {}),
    ...(row.idem_key !== null ? { idempotencyKey: row.idem_key } : {}),
  };
}

/** The message a request becomes once given its offset, without reading it back. */
export function messageOfRequest(request: AppendRequest, offset: number, epoch: string): StoredMessage {
  return {
    channel: request.channel,
    offset,
    epoch,
    data: request.data,
    time: request.time,
    ...(request.info ? { info: request.info } : {}),
    ...(request.tags ? { tags: request.tags } : {}),
    ...(request.tempId !== undefined ? { tempId: request.tempId } : {}),
    ...(request.idempotencyKey !== undefined ? { idempotencyKey: request.idempotencyKey } : {}),
  };
}

// Random bytes drawn in blocks: one randomBytes call per epoch cost more than the rest of an
// append (PostgreSQL batches offer an epoch for every channel, in case its row is new).
let entropy = Buffer.alloc(0);
let used = 0;

/** A new epoch: 6 random bytes, base64url, as the brokers' epochs. */
export function newEpoch(): string {
  if (used + 6 > entropy.length) {
    entropy = randomBytes(6 * 512);
    used = 0;
  }
  const epoch = entropy.toString('base64url', used, used + 6);
  used += 6;
  return epoch;
}
