import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Child, killAll } from '../children.js';
import { redisServerPid } from './redis_pid.js';
import { parsePinning, startPinnedRedis } from './pinned_redis.js';

/** The CPUs a process may run on, as the kernel reports them. */
function allowedCpus(pid: number): string | undefined {
  return /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
}

describe('--pin', () => {
  afterAll(killAll);

  it('refuses a value that is not two CPU lists', () => {
    for (const bad of ['0', '0:', ':1', '0:1:2', 'a:b', '0;1:2']) expect(() => parsePinning(bad), bad).toThrow(/--pin: expected/);
    expect(() => parsePinning('0:4096')).toThrow(/taskset cannot run on CPUs 4096/);
    expect(parsePinning('0:0')).toEqual({ servers: '0', load: '0' });
  });

  it('runs a pinned process and the run’s own Redis on the CPUs given, the others anywhere', async () => {
    const pinned = new Child({ name: 'pinned', nodeArgs: ['-e', 'setTimeout(() => {}, 10_000)'], ipc: false, cpus: '0' });
    const free = new Child({ name: 'free', nodeArgs: ['-e', 'setTimeout(() => {}, 10_000)'], ipc: false });
    const redis = await startPinnedRedis('0');
    try {
      const redisPid = await redisServerPid(redis.url);
      expect(redisPid).not.toBeNull();
      expect(allowedCpus(redisPid ?? 0)).toBe('0');
      // Child's pid is the program's itself: sh and taskset exec into it, so CPU readings stay right.
      expect(readFileSync(`/proc/${pinned.pid}/cmdline`, 'utf8')).toContain('setTimeout');
      expect(allowedCpus(pinned.pid)).toBe('0');
      expect(allowedCpus(free.pid)).toBe(allowedCpus(process.pid));
    } finally {
      await redis.stop();
      await Promise.all([pinned.kill(), free.kill()]);
    }
  });
});
