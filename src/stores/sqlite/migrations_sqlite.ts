import type { MigrationSet } from '../migrations.js';

/**
 * The store's tables in SQLite. Text compares as bytes (BINARY), like PostgreSQL's "C"
 * collation the other store uses, so both order names the same way. Times are Unix ms.
 */
export const sqliteStoreMigrations: MigrationSet = {
  component: 'store',
  migrations: [
    {
      version: 1,
      name: 'channels, messages, rooms, members, read positions, users',
      sql: `
CREATE TABLE channels (
  name TEXT PRIMARY KEY,
  epoch TEXT NOT NULL,
  top INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages (
  channel TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time INTEGER NOT NULL,
  data TEXT NOT NULL,
  user_id TEXT,
  client_id TEXT,
  conn_info TEXT,
  chan_info TEXT,
  tags TEXT,
  temp_id TEXT,
  idem_key TEXT,
  PRIMARY KEY (channel, seq)
);
CREATE UNIQUE INDEX messages_idem_key ON messages (channel, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX messages_idem_time ON messages (time) WHERE idem_key IS NOT NULL;
CREATE INDEX messages_user ON messages (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE rooms (
  name TEXT PRIMARY KEY,
  title TEXT,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE room_members (
  room TEXT NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
  user_id TEXT NOT NULL,
  joined_at INTEGER NOT NULL,
  PRIMARY KEY (room, user_id)
) WITHOUT ROWID;
CREATE INDEX room_members_user ON room_members (user_id, room);

CREATE TABLE read_positions (
  channel TEXT NOT NULL,
  user_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (channel, user_id)
) WITHOUT ROWID;

CREATE TABLE users (
  user_id TEXT PRIMARY KEY,
  last_seen INTEGER NOT NULL
) WITHOUT ROWID;
`,
    },
  ],
};
