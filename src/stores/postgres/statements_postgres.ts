/**
 * The PostgreSQL store's statements. Fixed texts with numbered parameters; batches travel as
 * parameter arrays expanded by unnest, never as SQL built from values. The hot ones are
 * named, so each connection prepares them once.
 */

export interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

export const sql = {
  /**
   * Creates missing channel rows and locks every channel of the batch, in name order so that
   * two instances locking overlapping channels cannot deadlock; returns their epoch and top.
   * $1 names, $2 candidate epochs, $3 time.
   */
  lockChannels: {
    name: 'relais_lock_channels',
    text:
      'INSERT INTO channels AS c (name, epoch, top, created_at, updated_at) ' +
      'SELECT t.name, t.epoch, 0, $3::bigint, $3::bigint FROM unnest($1::text[], $2::text[]) AS t(name, epoch) ORDER BY t.name COLLATE "C" ' +
      'ON CONFLICT (name) DO UPDATE SET top = c.top RETURNING c.name, c.epoch, c.top',
  },
  /** Messages already stored under idempotency keys. $1 channels, $2 keys. */
  byKeys: {
    name: 'relais_by_keys',
    text:
      'SELECT m.channel, m.seq, m.time, m.data, m.user_id, m.client_id, m.conn_info, m.chan_info, m.tags, m.temp_id, m.idem_key FROM unnest($1::text[], $2::text[]) AS k(channel, key) JOIN messages m ON m.channel = k.channel AND m.idem_key = k.key',
  },
  /** Moves channel tops and inserts the batch's messages in one statement. */
  write: {
    name: 'relais_write',
    text:
      'WITH moved AS (UPDATE channels AS c SET top = u.top, updated_at = GREATEST(c.updated_at, u.updated_at) ' +
      'FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(name, top, updated_at) WHERE c.name = u.name) ' +
      'INSERT INTO messages (channel, seq, time, data, user_id, client_id, conn_info, chan_info, tags, temp_id, idem_key) ' +
      'SELECT * FROM unnest($4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])',
  },
  /** Position and messages after $2, in one snapshot. No row: the channel has none. */
  rangeAfter: {
    name: 'relais_range_after',
    text:
      'SELECT c.top, c.epoch, m.seq, m.time, m.data, m.user_id, m.client_id, m.conn_info, m.chan_info, m.tags, m.temp_id, m.idem_key FROM channels c ' +
        'LEFT JOIN LATERAL (SELECT * FROM messages WHERE channel = c.name AND seq > $2 ORDER BY seq LIMIT $3) m ON true ' +
        'WHERE c.name = $1 ORDER BY m.seq',
  },
  /** Position and messages below $2, newest first, in one snapshot. */
  pageBefore: {
    name: 'relais_page_before',
    text:
      'SELECT c.top, c.epoch, m.seq, m.time, m.data, m.user_id, m.client_id, m.conn_info, m.chan_info, m.tags, m.temp_id, m.idem_key FROM channels c ' +
        'LEFT JOIN LATERAL (SELECT * FROM messages WHERE channel = c.name AND seq < $2 ORDER BY seq DESC LIMIT $3) m ON true ' +
        'WHERE c.name = $1 ORDER BY m.seq DESC',
  },
  position: { name: 'relais_position', text: 'SELECT top, epoch FROM channels WHERE name = $1' },
  /** A channel's row, created with epoch $2 when missing; its position either way. $1 name, $3 time. */
  openChannel: {
    name: 'relais_open_channel',
    text:
      'WITH created AS (INSERT INTO channels (name, epoch, top, created_at, updated_at) VALUES ($1, $2, 0, $3, $3) ON CONFLICT (name) DO NOTHING RETURNING top, epoch) ' +
      'SELECT top, epoch FROM created UNION ALL SELECT top, epoch FROM channels WHERE name = $1 LIMIT 1',
  },
  resetChannel: {
    name: 'relais_reset_channel',
    text:
      'INSERT INTO channels (name, epoch, top, created_at, updated_at) VALUES ($1, $2, 0, $3, $3) ' +
      'ON CONFLICT (name) DO UPDATE SET epoch = EXCLUDED.epoch, top = 0, updated_at = EXCLUDED.updated_at',
  },
  deleteChannelMessages: { name: 'relais_delete_channel_messages', text: 'DELETE FROM messages WHERE channel = $1' },
  deleteChannelReadPositions: { name: 'relais_delete_channel_reads', text: 'DELETE FROM read_positions WHERE channel = $1' },
  deleteChannel: { name: 'relais_delete_channel', text: 'DELETE FROM channels WHERE name = $1' },
  deleteUserChunk: {
    name: 'relais_delete_user_chunk',
    text: 'DELETE FROM messages WHERE (channel, seq) IN (SELECT channel, seq FROM messages WHERE user_id = $1 LIMIT $2)',
  },
  listChannels: { name: 'relais_list_channels', text: 'SELECT name, epoch, top, updated_at FROM channels WHERE name > $1 ORDER BY name LIMIT $2' },
  lockChannel: { name: 'relais_lock_channel', text: 'SELECT top FROM channels WHERE name = $1 FOR UPDATE' },
  oldest: { name: 'relais_oldest', text: 'SELECT seq, time FROM messages WHERE channel = $1 ORDER BY seq LIMIT $2' },
  deleteUpTo: { name: 'relais_delete_up_to', text: 'DELETE FROM messages WHERE channel = $1 AND seq <= $2' },
  forgetKeys: {
    name: 'relais_forget_keys',
    text: 'UPDATE messages SET idem_key = NULL WHERE (channel, seq) IN (SELECT channel, seq FROM messages WHERE idem_key IS NOT NULL AND time < $1 LIMIT $2)',
  },
  insertRoom: {
    name: 'relais_insert_room',
    text: 'INSERT INTO rooms (name, title, created_by, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING name, title, created_by, created_at',
  },
  room: { name: 'relais_room', text: 'SELECT name, title, created_by, created_at FROM rooms WHERE name = $1' },
  deleteRoom: { name: 'relais_delete_room', text: 'DELETE FROM rooms WHERE name = $1' },
  addMember: {
    name: 'relais_add_member',
    text: 'INSERT INTO room_members (room, user_id, joined_at) VALUES ($1, $2, $3) ON CONFLICT (room, user_id) DO NOTHING',
  },
  removeMember: { name: 'relais_remove_member', text: 'DELETE FROM room_members WHERE room = $1 AND user_id = $2' },
  isMember: { name: 'relais_is_member', text: 'SELECT 1 AS one FROM room_members WHERE room = $1 AND user_id = $2' },
  listMembers: {
    name: 'relais_list_members',
    text: 'SELECT user_id, joined_at FROM room_members WHERE room = $1 AND user_id > $2 ORDER BY user_id LIMIT $3',
  },
  userRooms: {
    name: 'relais_user_rooms',
    text:
      'SELECT r.name, r.title, r.created_by, r.created_at, c.epoch, c.top, COALESCE(c.updated_at, r.created_at) AS activity, rp.seq AS read_seq, m.seq, m.time, m.data, m.user_id, m.client_id, m.conn_info, m.chan_info, m.tags, m.temp_id, m.idem_key ' +
        'FROM room_members rm JOIN rooms r ON r.name = rm.room ' +
        'LEFT JOIN channels c ON c.name = rm.room ' +
        'LEFT JOIN read_positions rp ON rp.channel = rm.room AND rp.user_id = rm.user_id ' +
        'LEFT JOIN LATERAL (SELECT * FROM messages WHERE channel = rm.room ORDER BY seq DESC LIMIT 1) m ON true ' +
        'WHERE rm.user_id = $1 ORDER BY activity DESC, r.name LIMIT $2',
  },
  setReadPosition: {
    name: 'relais_set_read_position',
    text:
      'INSERT INTO read_positions (channel, user_id, seq, updated_at) ' +
      'VALUES ($1, $2, LEAST($3::bigint, COALESCE((SELECT top FROM channels WHERE name = $1), 0)), $4) ' +
      'ON CONFLICT (channel, user_id) DO UPDATE SET seq = GREATEST(read_positions.seq, EXCLUDED.seq), updated_at = EXCLUDED.updated_at ' +
      'RETURNING seq',
  },
  readState: {
    name: 'relais_read_state',
    text:
      'SELECT c.top, c.epoch, (SELECT seq FROM read_positions WHERE channel = $1 AND user_id = $2) AS read_seq ' +
      'FROM (SELECT 1) AS one LEFT JOIN channels c ON c.name = $1',
  },
  touchUser: {
    name: 'relais_touch_user',
    text: 'INSERT INTO users (user_id, last_seen) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET last_seen = GREATEST(users.last_seen, EXCLUDED.last_seen)',
  },
  lastSeen: { name: 'relais_last_seen', text: 'SELECT user_id, last_seen FROM users WHERE user_id = ANY($1::text[])' },
  putRevocation: {
    name: 'relais_put_revocation',
    text:
      'INSERT INTO revocations (kind, key, issued_before, expires_at) VALUES ($1, $2, $3, $4) ' +
      'ON CONFLICT (kind, key) DO UPDATE SET issued_before = EXCLUDED.issued_before, expires_at = EXCLUDED.expires_at',
  },
  deleteRevocation: { name: 'relais_delete_revocation', text: 'DELETE FROM revocations WHERE kind = $1 AND key = $2' },
  forgetRevocations: { name: 'relais_forget_revocations', text: 'DELETE FROM revocations WHERE expires_at > 0 AND expires_at <= $1' },
  listRevocations: { name: 'relais_list_revocations', text: 'SELECT kind, key, issued_before, expires_at FROM revocations ORDER BY kind, key LIMIT $1' },
} as const satisfies Record<string, NamedStatement>;
