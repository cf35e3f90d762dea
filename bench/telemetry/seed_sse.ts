/**
 * Seed 003 case 2's SSE server, as its code does it, on node:http instead of express (the
 * route's logic unchanged): a client map keyed by user id, a snapshot with MGET, a Redis
 * subscriber on `metrics:aggregated` that filters each message for each client. Env: PORT,
 * REDIS_URL, KEY_PREFIX.
 */
import { createServer, type ServerResponse } from 'node:http';
import { Redis } from 'ioredis';

const prefix = process.env['KEY_PREFIX'] ?? '';
const redisUrl = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';

interface SSEClient {
  res: ServerResponse;
  deviceIds: Set<string>;
}

const clients = new Map<string, SSEClient>();

function verifyToken(_token: string): Promise<{ userId: string } | null> {
  return Promise.resolve({ userId: 'user-1' });
}

const server = createServer((req, res) => {
  void (async () => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/api/metrics/stream') {
      res.statusCode = 404;
      res.end();
      return;
    }
    const token = req.headers.authorization?.replace('Bearer ', '');
    const session = await verifyToken(token ?? '');
    if (!session) {
      res.statusCode = 401;
      res.end();
      return;
    }
    const deviceIds = new Set((url.searchParams.get('devices') ?? '').split(',').filter(Boolean));
    res.setHeader('Content-Type', 'text/event-stream');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    const clientId = session.userId;
    clients.set(clientId, { res, deviceIds });

    const redis = new Redis(redisUrl);
    const latestKeys = [...deviceIds].flatMap((id) => ['temperature', 'vibration', 'pressure'].map((s) => `${prefix}device:${id}:latest:${s}`));
    if (latestKeys.length > 0) {
      const latestValues = await redis.mget(...latestKeys);
      const snapshot = latestValues.filter((v): v is string => v !== null).map((v) => JSON.parse(v) as unknown);
      if (snapshot.length > 0) {
        res.write(`event: SNAPSHOT\n`);
        res.write(`data: ${JSON.stringify(snapshot)}\n\n`);
      }
    }
    const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), 20_000);
    req.on('close', () => {
      clearInterval(heartbeat);
      clients.delete(clientId);
      redis.disconnect();
    });
  })();
});

const subscriber = new Redis(redisUrl);
await subscriber.subscribe(`${prefix}metrics:aggregated`);
subscriber.on('message', (_channel: string, messageJson: string) => {
  const allMetrics = JSON.parse(messageJson) as { deviceId: string }[];
  for (const [, client] of clients) {
    const relevant = client.deviceIds.size === 0 ? allMetrics : allMetrics.filter((m) => client.deviceIds.has(m.deviceId));
    if (relevant.length > 0) {
      client.res.write(`event: METRICS_UPDATE\n`);
      client.res.write(`data: ${JSON.stringify(relevant)}\n\n`);
    }
  }
});

server.listen(Number(process.env['PORT']), '127.0.0.1');
process.on('SIGTERM', () => {
  subscriber.disconnect();
  process.exit(0);
});
