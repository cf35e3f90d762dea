/**
 * The bare `ws` target, the practical ceiling in Node: rooms are sets of sockets; a
 * publication is serialized once and the same string sent to each member.
 * Env: PORT. Listens on 127.0.0.1.
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const rooms = new Map<string, Set<WebSocket>>();

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function onMessage(ws: WebSocket, joined: Set<string>, text: string): void {
  const msg: unknown = JSON.parse(text);
  if (!isRecord(msg) || typeof msg['room'] !== 'string') return;
  const room = msg['room'];
  if (msg['t'] === 'sub') {
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(ws);
    joined.add(room);
    ws.send(JSON.stringify({ t: 'subok', room }));
  } else if (msg['t'] === 'pub') {
    const members = rooms.get(room);
    if (!members) return;
    const frame = JSON.stringify({ t: 'msg', room, data: msg['data'] });
    for (const member of members) member.send(frame);
  }
}

const server = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  const joined = new Set<string>();
  ws.on('message', (data: Buffer) => {
    try {
      onMessage(ws, joined, data.toString('utf8'));
    } catch {
      ws.terminate();
    }
  });
  ws.on('close', () => {
    for (const room of joined) rooms.get(room)?.delete(ws);
  });
  ws.on('error', () => ws.terminate());
});
server.listen(Number(process.env['PORT']), '127.0.0.1');
process.on('disconnect', () => process.exit(0));
// A plain exit (not death by signal) lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0));
