import type { MigrationSet } from '../migrations.js';

/**
 * The store's tables in PostgreSQL, created in the connection's schema (the store's `schema`
 * option sets search_path). Names use the "C" collation: bytewise order, as in SQLite, and
 * index order that does not depend on the server's locale. Times are Unix ms.
 */
export const postgresStoreMigrations: MigrationSet = {
  component: 'store',
  migrations: [
    {
      version: 1,
      name: 'channels, messages, rooms, members, read positions, users',
      sql: `
CREATE TABLE channels (
  name text COLLATE "C" PRIMARY KEY,
  epoch text NOT NULL,
  top bigint NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
);

CREATE TABLE messages (
  channel text COLLATE "C" NOT NULL,
  seq bigint NOT NULL,
  time bigint NOT NULL,
  data text NOT NULL,
  user_id text COLLATE "C",
  client_id text,
  conn_info text,
  chan_info text,
  tags text,
  temp_id text,
  idem_key text COLLATE "C",
  PRIMARY KEY (channel, seq)
);
CREATE UNIQUE INDEX messages_idem_key ON messages (channel, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX messages_idem_time ON messages (time) WHERE idem_key IS NOT NULL;
CREATE INDEX messages_user ON messages (user_id) WHERE user_id IS NOT NULL;

CREATE TABLE rooms (
  name text COLLATE "C" PRIMARY KEY,
  title text,
  created_by text NOT NULL,
  created_at bigint NOT NULL
);

CREATE TABLE room_members (
  room text COLLATE "C" NOT NULL REFERENCES rooms (name) ON DELETE CASCADE,
  user_id text COLLATE "C" NOT NULL,
  joined_at bigint NOT NULL,
  PRIMARY KEY (room, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id, room);

CREATE TABLE read_positions (
  channel text COLLATE "C" NOT NULL,
  user_id text COLLATE "C" NOT NULL,
  seq bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (channel, user_id)
);

CREATE TABLE users (
  user_id text COLLATE "C" PRIMARY KEY,
  last_seen bigint NOT NULL
);
`,
    },
  ],
};
