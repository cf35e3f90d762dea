import { describe, expect, it } from 'vitest';
import { parseRedisUrl, redactRedisUrl } from './target.js';

describe('REDIS_URL shapes', () => {
  it('keeps a single-server URL as it is', () => {
    expect(parseRedisUrl('redis://:pw@127.0.0.1:6379/2')).toEqual({ kind: 'single', url: 'redis://:pw@127.0.0.1:6379/2' });
    expect(parseRedisUrl('rediss://h:6380')).toEqual({ kind: 'single', url: 'rediss://h:6380' });
  });

  it('reads a Cluster as its seed nodes and credentials', () => {
    expect(parseRedisUrl('redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      username: 'app',
      password: 's@cret',
      tls: false,
    });
    expect(parseRedisUrl('rediss+cluster://h1:7000/')).toMatchObject({ kind: 'cluster', tls: true });
  });

  it('reads a Sentinel group as its sentinels, master name and database', () => {
    expect(parseRedisUrl('redis+sentinel://:pw@s1:26379,s2:26380/mymaster/3?sentinel_password=x')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      masterName: 'mymaster',
      db: 3,
      password: 'pw',
      sentinelPassword: 'x',
      tls: false,
    });
    expect(parseRedisUrl('redis+sentinel://s1/m')).toMatchObject({ sentinels: [{ host: 's1', port: 6379 }], db: 0 });
  });

  it('says what is wrong with a URL it cannot use', () => {
    expect(() => parseRedisUrl('http://h:1')).toThrow(/must start with/);
    expect(() => parseRedisUrl('redis+sentinel://s1:26379')).toThrow(/names its master group/);
    expect(() => parseRedisUrl('redis+cluster://h:1/0')).toThrow(/no database/);
    expect(() => parseRedisUrl('redis+cluster://h:notaport')).toThrow(/host:port/);
    expect(() => parseRedisUrl('redis+cluster://')).toThrow(/no host/);
    expect(() => parseRedisUrl('redis+sentinel://s:1/m/x')).toThrow(/not a number/);
  });

  it('hides passwords in logs', () => {
    expect(redactRedisUrl('redis+cluster://app:secret@h:1,h:2')).toBe('redis+cluster://app:***@h:1,h:2');
    expect(redactRedisUrl('redis+sentinel://:pw@s:1/m?sentinel_password=x')).toBe('redis+sentinel://:***@s:1/m?sentinel_password=***');
  });
});
