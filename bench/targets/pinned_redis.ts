import { execFileSync, spawn } from 'node:child_process';
import { freePort, waitForPort } from '../net.js';
import type { Pinning } from './target.js';

/** A Redis server of the run's own, started by `--pin` on the servers' CPUs. */
export interface PinnedRedis {
  readonly url: string;
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 2000;

/**
 * Parses `--pin <servers>:<load>` (two `taskset -c` lists, e.g. `0:1` or `0-3:4-7`) and
 * checks that taskset accepts both on this machine. Throws a message naming the problem.
 */
export function parsePinning(value: string): Pinning {
  const parts = value.split(':');
  const valid = (list: string | undefined): list is string => list !== undefined && /^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(list);
  const [servers, load] = parts;
  if (parts.length !== 2 || !valid(servers) || !valid(load)) throw new Error(`--pin: expected <server cpus>:<load cpus> (e.g. 0:1 or 0-3:4-7), got "${value}"`);
  for (const list of [servers, load]) {
    try {
      execFileSync('taskset', ['-c', list, 'true'], { stdio: 'ignore' });
    } catch {
      throw new Error(`--pin: taskset cannot run on CPUs ${list} here (is taskset installed, are the CPUs online?)`);
    }
  }
  return { servers, load };
}

/**
 * Starts `redis-server` (no persistence) on a free port of 127.0.0.1, bound by taskset to
 * `cpus`: the shared Redis cannot be pinned without moving other people's work, so a pinned
 * run brings its own, used by every target alike.
 */
export async function startPinnedRedis(cpus: string): Promise<PinnedRedis> {
  const port = await freePort();
  const child = spawn('taskset', ['-c', cpus, 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  let exit: string | null = null;
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      exit = `redis-server exited (${signal ?? `code ${code}`})`;
      resolve();
    });
    child.on('error', (err) => {
      exit = `redis-server: ${err.message}`;
      resolve();
    });
  });
  const killNow = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killNow);
  const stop = async (): Promise<void> => {
    process.off('exit', killNow);
    if (exit !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(killNow, STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitForPort(port, START_TIMEOUT_MS, () => exit);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `redis://127.0.0.1:${port}`, stop };
}
