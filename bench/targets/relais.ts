import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Child, repoRoot, serverNodeFlags } from '../children.js';
import { freePort, sleep, waitForPort } from '../net.js';
import type { RunningTarget, TargetName, TargetOptions } from './target.js';
import { redisServerPid } from './redis_pid.js';

export const RELAIS_MAIN = join(repoRoot, 'dist/src/cli/main.js');

/**
 * The `bench` namespace as issue 3 asks (history, recovery, client publish), with the
 * per-connection and per-user rate limits and the connections-per-user cap lifted: the
 * benchmark publishes thousands per second from one connection.
 */
function benchConfig(historySize: number, writeDelayMs: number, extra: Readonly<Record<string, unknown>> = {}): object {
  const base: Record<string, unknown> = {
    namespaces: {
      bench: { history_size: historySize, history_ttl: '10m', force_recovery: true, allow_subscribe: 'authenticated', allow_publish: 'authenticated' },
    },
    rate_limit: { connection: { burst: 1_000_000, per_second: 0 }, user: { burst: 1_000_000, per_second: 0 } },
    client: { max_connections_per_user: 0, write_delay: `${writeDelayMs}ms` },
  };
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  for (const [key, value] of Object.entries(extra)) {
    const current = base[key];
    base[key] = isObject(current) && isObject(value) ? { ...current, ...value } : value;
  }
  return base;
}

/** Starts 1 Relais (memory broker) or 2 over Redis, from the built server (npm run build) or another build. */
export async function startRelais(instances: 1 | 2, options: TargetOptions, main = RELAIS_MAIN, name?: TargetName, serveArgs: readonly string[] = []): Promise<RunningTarget> {
  if (!existsSync(main)) throw new Error(`${main} is missing: run "npm run build" first`);
  const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const configPath = join(tmpdir(), `relais-bench-${tag}.json`);
  writeFileSync(configPath, JSON.stringify(benchConfig(options.historySize, options.relaisWriteDelayMs ?? 0, options.relaisConfig)));
  const tokenSecret = `bench-secret-${randomBytes(12).toString('hex')}`;
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    RELAIS_TOKEN_SECRET: tokenSecret,
    RELAIS_API_KEY: `bench-key-${randomBytes(8).toString('hex')}`,
    LOG_LEVEL: 'warn',
    RELAIS_CONFIG: configPath,
    // The embedded chat namespace is persistent: its store goes with the run, not the checkout.
    RELAIS_DATA_DIR: join(tmpdir(), `relais-bench-${tag}-data`),
  };
  if (instances === 2) Object.assign(env, { REDIS_URL: options.redisUrl, RELAIS_BUS_PREFIX: `bench-${tag}` });
  const servers: Child[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.kill()));
    rmSync(configPath, { force: true });
    rmSync(env['RELAIS_DATA_DIR'] ?? '', { recursive: true, force: true });
  };
  try {
    const urls: string[] = [];
    for (let i = 0; i < instances; i++) {
      const port = await freePort();
      const server = new Child({ name: `relais#${i}`, nodeArgs: [...serverNodeFlags(), ...(options.serverNodeFlags ?? []), main, 'serve', ...serveArgs], env: { ...env, PORT: String(port) }, ipc: false, cpus: options.pin?.servers });
      servers.push(server);
      await waitForPort(port, 20_000, () => server.gone());
      // The port answers once the first worker listens: give the others a moment to join the rotation.
      if (serveArgs.length > 0) await sleep(1500);
      urls.push(`ws://127.0.0.1:${port}`);
    }
    const redisPid = instances === 2 ? await redisServerPid(options.redisUrl) : null;
    return {
      name: name ?? (instances === 2 ? 'relais-redis' : 'relais'),
      endpoint: { protocol: 'relais', urls, tokenSecret },
      servers,
      auxPids: redisPid === null ? [] : [redisPid],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
