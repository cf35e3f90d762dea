/**
 * The Socket.IO 4.8 target, websocket transport only: `join` (acknowledged) puts the
 * socket in a room, `pub` broadcasts `msg` with `io.to(room).emit`. With REDIS_URL and
 * REDIS_PREFIX it uses @socket.io/redis-adapter. Env: PORT. Listens on 127.0.0.1.
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';

interface ClientToServer {
  join: (room: unknown, ack?: (ok: boolean) => void) => void;
  pub: (room: unknown, data: unknown) => void;
}
interface ServerToClient {
  msg: (data: unknown) => void;
}

const httpServer = createServer();
const io = new Server<ClientToServer, ServerToClient>(httpServer, { transports: ['websocket'], serveClient: false });

const redisUrl = process.env['REDIS_URL'];
const prefix = process.env['REDIS_PREFIX'];
if (redisUrl && prefix) {
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  io.adapter(createAdapter(pub, sub, { key: prefix }));
}

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    if (typeof room === 'string') void socket.join(room);
    if (typeof ack === 'function') ack(true);
  });
  socket.on('pub', (room, data) => {
    if (typeof room === 'string') io.to(room).emit('msg', data);
  });
});
httpServer.listen(Number(process.env['PORT']), '127.0.0.1');
process.on('disconnect', () => process.exit(0));
// A plain exit (not death by signal) lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0));
