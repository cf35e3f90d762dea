/**
 * The SQLite store's statements, prepared once per connection. Every value is a bound
 * parameter; the texts are fixed.
 */
import type { Database, Statement } from 'better-sqlite3';

export interface SqliteStatements {
  readonly ensureChannel: Statement<[string, string, number, number]>;
  readonly channelRow: Statement<[string]>;
  readonly messageByKey: Statement<[string, string]>;
  readonly insertMessage: Statement<
    [string, number, number, string, string | null, string | null, string | null, string | null, string | null, string | null, string | null]
  >;
  readonly updateTop: Statement<[number, number, string]>;
  readonly rangeAfter: Statement<[string, number, number]>;
  readonly pageBefore: Statement<[string, number, number]>;
  readonly newest: Statement<[string, number]>;
  readonly deleteChannelMessages: Statement<[string]>;
  readonly resetChannel: Statement<[string, string, number, number]>;
  readonly deleteChannelReadPositions: Statement<[string]>;
  readonly deleteUserChunk: Statement<[string, number]>;
  readonly listChannels: Statement<[string, number]>;
  readonly oldest: Statement<[string, number]>;
  readonly deleteUpTo: Statement<[string, number]>;
  readonly forgetKeys: Statement<[number, number]>;
  readonly insertRoom: Statement<[string, string | null, string, number]>;
  readonly room: Statement<[string]>;
  readonly deleteRoom: Statement<[string]>;
  readonly deleteChannel: Statement<[string]>;
  readonly addMember: Statement<[string, string, number]>;
  readonly removeMember: Statement<[string, string]>;
  readonly isMember: Statement<[string, string]>;
  readonly listMembers: Statement<[string, string, number]>;
  readonly userRooms: Statement<[string, number]>;
  readonly setReadPosition: Statement<{ channel: string; user: string; offset: number; time: number }>;
  readonly readPosition: Statement<[string, string]>;
  readonly touchUser: Statement<[string, number]>;
  readonly lastSeen: Statement<[string]>;
}

export interface ChannelRow {
  readonly epoch: string;
  readonly top: number;
  readonly updated_at: number;
}

export function prepareStatements(db: Database): SqliteStatements {
  return {
    ensureChannel: db.prepare('INSERT OR IGNORE INTO channels (name, epoch, top, created_at, updated_at) VALUES (?, ?, 0, ?, ?)'),
    channelRow: db.prepare('SELECT epoch, top, updated_at FROM channels WHERE name = ?'),
    messageByKey: db.prepare(
      'SELECT seq, time, data, user_id, client_id, conn_info, chan_info, tags, temp_id, idem_key FROM messages WHERE channel = ? AND idem_key = ?',
    ),
    insertMessage: db.prepare(
      'INSERT INTO messages (channel, seq, time, data, user_id, client_id, conn_info, chan_info, tags, temp_id, idem_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    updateTop: db.prepare('UPDATE channels SET top = ?, updated_at = ? WHERE name = ?'),
    rangeAfter: db.prepare(
      'SELECT seq, time, data, user_id, client_id, conn_info, chan_info, tags, temp_id, idem_key FROM messages WHERE channel = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    pageBefore: db.prepare(
      'SELECT seq, time, data, user_id, client_id, conn_info, chan_info, tags, temp_id, idem_key FROM messages WHERE channel = ? AND seq < ? ORDER BY seq DESC LIMIT ?',
    ),
    newest: db.prepare(
      'SELECT seq, time, data, user_id, client_id, conn_info, chan_info, tags, temp_id, idem_key FROM messages WHERE channel = ? ORDER BY seq DESC LIMIT ?',
    ),
    deleteChannelMessages: db.prepare('DELETE FROM messages WHERE channel = ?'),
    resetChannel: db.prepare(
      'INSERT INTO channels (name, epoch, top, created_at, updated_at) VALUES (?, ?, 0, ?, ?) ' +
        'ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, top = 0, updated_at = excluded.updated_at',
    ),
    deleteChannelReadPositions: db.prepare('DELETE FROM read_positions WHERE channel = ?'),
    deleteUserChunk: db.prepare('DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE user_id = ? LIMIT ?)'),
    listChannels: db.prepare('SELECT name, epoch, top, updated_at FROM channels WHERE name > ? ORDER BY name LIMIT ?'),
    oldest: db.prepare('SELECT seq, time FROM messages WHERE channel = ? ORDER BY seq LIMIT ?'),
    deleteUpTo: db.prepare('DELETE FROM messages WHERE channel = ? AND seq <= ?'),
    forgetKeys: db.prepare(
      'UPDATE messages SET idem_key = NULL WHERE rowid IN (SELECT rowid FROM messages WHERE idem_key IS NOT NULL AND time < ? LIMIT ?)',
    ),
    insertRoom: db.prepare('INSERT OR IGNORE INTO rooms (name, title, created_by, created_at) VALUES (?, ?, ?, ?)'),
    room: db.prepare('SELECT name, title, created_by, created_at FROM rooms WHERE name = ?'),
    deleteRoom: db.prepare('DELETE FROM rooms WHERE name = ?'),
    deleteChannel: db.prepare('DELETE FROM channels WHERE name = ?'),
    // OR IGNORE skips an existing member; a missing room still fails its foreign key.
    addMember: db.prepare('INSERT OR IGNORE INTO room_members (room, user_id, joined_at) VALUES (?, ?, ?)'),
    removeMember: db.prepare('DELETE FROM room_members WHERE room = ? AND user_id = ?'),
    isMember: db.prepare('SELECT 1 AS one FROM room_members WHERE room = ? AND user_id = ?'),
    listMembers: db.prepare('SELECT user_id, joined_at FROM room_members WHERE room = ? AND user_id > ? ORDER BY user_id LIMIT ?'),
    userRooms: db.prepare(
      'SELECT r.name, r.title, r.created_by, r.created_at, c.epoch, c.top, COALESCE(c.updated_at, r.created_at) AS activity, rp.seq AS read_seq, ' +
        'm.seq, m.time, m.data, m.user_id, m.client_id, m.conn_info, m.chan_info, m.tags, m.temp_id, m.idem_key ' +
        'FROM room_members rm JOIN rooms r ON r.name = rm.room ' +
        'LEFT JOIN channels c ON c.name = rm.room ' +
        'LEFT JOIN read_positions rp ON rp.channel = rm.room AND rp.user_id = rm.user_id ' +
        'LEFT JOIN messages m ON m.channel = rm.room AND m.seq = (SELECT MAX(seq) FROM messages WHERE channel = rm.room) ' +
        'WHERE rm.user_id = ? ORDER BY activity DESC, r.name LIMIT ?',
    ),
    setReadPosition: db.prepare(
      'INSERT INTO read_positions (channel, user_id, seq, updated_at) ' +
        'VALUES (@channel, @user, MIN(@offset, COALESCE((SELECT top FROM channels WHERE name = @channel), 0)), @time) ' +
        'ON CONFLICT (channel, user_id) DO UPDATE SET seq = MAX(read_positions.seq, excluded.seq), updated_at = excluded.updated_at ' +
        'RETURNING seq',
    ),
    readPosition: db.prepare('SELECT seq FROM read_positions WHERE channel = ? AND user_id = ?'),
    touchUser: db.prepare(
      'INSERT INTO users (user_id, last_seen) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET last_seen = MAX(users.last_seen, excluded.last_seen)',
    ),
    lastSeen: db.prepare('SELECT last_seen FROM users WHERE user_id = ?'),
  };
}
