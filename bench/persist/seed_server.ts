/**
 * Seed 003 case 1's design, as its code does it: Socket.IO (websocket only), and for each
 * message one `INSERT ... RETURNING` into PostgreSQL through a pg pool, then `io.to(room).emit`
 * to the room, then the acknowledgement to the sender. Env: PORT, DATABASE_URL, PG_SCHEMA
 * (existing), DB_POOL_MAX. Listens on 127.0.0.1.
 */
import { createServer } from 'node:http';
import pg from 'pg';
import { Server } from 'socket.io';

interface Message {
  id: string;
  tempId: string;
  roomId: string;
  userId: string;
  content: string;
  createdAt: string;
}
interface ClientToServer {
  JOIN_ROOM: (payload: { roomId: string }, ack: () => void) => void;
  SEND_MESSAGE: (payload: { roomId: string; content: string; tempId: string }, ack: (message: Message) => void) => void;
}
interface ServerToClient {
  NEW_MESSAGE: (message: Message) => void;
}

const schema = process.env['PG_SCHEMA'] ?? 'public';
const pool = new pg.Pool({
  connectionString: process.env['DATABASE_URL'],
  max: Number(process.env['DB_POOL_MAX'] ?? 20),
  options: `-c search_path=${schema}`,
});
await pool.query(
  'CREATE TABLE IF NOT EXISTS messages (id bigserial PRIMARY KEY, room_id text NOT NULL, user_id text NOT NULL, content text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
);

const httpServer = createServer();
const io = new Server<ClientToServer, ServerToClient>(httpServer, { transports: ['websocket'], serveClient: false });
io.on('connection', (socket) => {
  const userId = String(socket.handshake.auth['userId'] ?? 'anonymous');
  socket.on('JOIN_ROOM', ({ roomId }, ack) => {
    void socket.join(roomId);
    ack();
  });
  socket.on('SEND_MESSAGE', ({ roomId, content, tempId }, ack) => {
    pool
      .query<{ id: string; created_at: Date }>('INSERT INTO messages (room_id, user_id, content) VALUES ($1, $2, $3) RETURNING id, created_at', [roomId, userId, content])
      .then(({ rows }) => {
        const row = rows[0];
        if (!row) return;
        const message = { id: row.id, tempId, roomId, userId, content, createdAt: row.created_at.toISOString() };
        io.to(roomId).emit('NEW_MESSAGE', message);
        ack(message);
      })
      .catch((err: unknown) => process.stderr.write(`insert failed: ${String(err)}\n`));
  });
});
httpServer.listen(Number(process.env['PORT']), '127.0.0.1');
process.on('SIGTERM', () => void pool.end().finally(() => process.exit(0)));
