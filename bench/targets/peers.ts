import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { spawnBenchProcess, type Child } from '../children.js';
import { freePort, waitForPort } from '../net.js';
import type { RunningTarget, TargetName, TargetOptions } from './target.js';
import { redisServerPid } from './redis_pid.js';

const WS_SERVER = fileURLToPath(new URL('./ws_server.ts', import.meta.url));
const SOCKETIO_SERVER = fileURLToPath(new URL('./socketio_server.ts', import.meta.url));

async function startInstances(name: TargetName, script: string, count: number, env: Record<string, string>, cpus?: string): Promise<{ servers: Child[]; urls: string[] }> {
  const servers: Child[] = [];
  const urls: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const server = spawnBenchProcess(`${name}#${i}`, script, { ...env, PORT: String(port) }, cpus);
      servers.push(server);
      await waitForPort(port, 20_000, () => server.gone());
      urls.push(`ws://127.0.0.1:${port}`);
    }
    return { servers, urls };
  } catch (err) {
    await Promise.all(servers.map((s) => s.kill()));
    throw err;
  }
}

/** The bare `ws` server. */
export async function startWs(options: TargetOptions): Promise<RunningTarget> {
  const { servers, urls } = await startInstances('ws', WS_SERVER, 1, {}, options.pin?.servers);
  return { name: 'ws', endpoint: { protocol: 'ws', urls }, servers, auxPids: [], stop: () => Promise.all(servers.map((s) => s.kill())).then(() => undefined) };
}

/** Socket.IO alone, or 2 instances with the Redis adapter under a key prefix of their own. */
export async function startSocketIo(instances: 1 | 2, options: TargetOptions): Promise<RunningTarget> {
  const name: TargetName = instances === 2 ? 'socketio-redis' : 'socketio';
  const env: Record<string, string> = instances === 2 ? { REDIS_URL: options.redisUrl, REDIS_PREFIX: `bench-sio-${process.pid}-${randomBytes(4).toString('hex')}` } : {};
  const { servers, urls } = await startInstances(name, SOCKETIO_SERVER, instances, env, options.pin?.servers);
  const redisPid = instances === 2 ? await redisServerPid(options.redisUrl) : null;
  return {
    name,
    endpoint: { protocol: 'socketio', urls },
    servers,
    auxPids: redisPid === null ? [] : [redisPid],
    stop: () => Promise.all(servers.map((s) => s.kill())).then(() => undefined),
  };
}
