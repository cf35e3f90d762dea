import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from './load.js';

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('reads the telemetry settings from the environment, and refuses windows too short', () => {
    const { config } = loadConfig({ env: { TELEMETRY: 'true', TELEMETRY_WINDOW: '250', MQTT_BROKER_URL: 'mqtt://127.0.0.1:1883', MQTT_PORT: '1884' } });
    expect(config.telemetry).toMatchObject({ enabled: true, window: 250, allowed_lateness: 500, latest_ttl: 60_000, channel: 'telemetry:metrics' });
    expect(config.telemetry.mqtt).toMatchObject({ broker_url: 'mqtt://127.0.0.1:1883', port: 1884, topic: 'devices/+/metrics', shared_group: 'relais' });
    expect(loadConfig({ env: {} }).config.telemetry.enabled).toBe(false);
    expect(problems(() => loadConfig({ env: { TELEMETRY_WINDOW: '10', MQTT_BROKER_URL: 'http://x' } }))).toEqual([
      'MQTT_BROKER_URL (telemetry.mqtt.broker_url): expected an mqtt://, mqtts://, ws:// or wss:// URL',
    ]);
    expect(problems(() => loadConfig({ env: { TELEMETRY_WINDOW: '10' } }))).toEqual(['telemetry.window must be at least 50ms (got 10 ms)']);
  });

  it('runs on embedded defaults with development secrets, and says so', () => {
    const loaded = loadConfig({ env: {} });
    expect(loaded.config.port).toBe(8000);
    expect(loaded.config.host).toBe('127.0.0.1');
    expect(loaded.config.namespaces['chat']?.join_leave).toBe(true);
    expect(loaded.config.api_key).toBeDefined();
    expect(loaded.warnings.length).toBe(2);
    expect(Object.isFrozen(loaded.config.client)).toBe(true);
  });

  it('reads the environment with our users names, over a YAML file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-config-'));
    const file = join(dir, 'relais.yaml');
    writeFileSync(file, 'port: 9000\nnamespaces:\n  room:\n    history_size: 5\n    history_ttl: 10m\n    presence: true\n');
    const { config, warnings } = loadConfig({
      env: { PORT: '9100', RELAIS_API_KEY: 'a-real-api-key', RELAIS_TOKEN_SECRET: 'a-real-secret-0123456789', CLIENT_URL: 'https://a.example, https://b.example' },
      file,
    });
    expect(config.port).toBe(9100);
    expect(config.namespaces['room']).toMatchObject({ history_size: 5, history_ttl: 600_000, presence: true });
    expect(config.namespaces['chat']).toBeDefined();
    expect(config.allowed_origins).toEqual(['https://a.example', 'https://b.example']);
    expect(warnings).toEqual([]);
  });

  it('reports every problem at once, in plain words', () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-config-'));
    const file = join(dir, 'relais.json');
    writeFileSync(
      file,
      JSON.stringify({ namespaces: { room: { history_size: 'ten', presence: false, join_leave: true }, 'Bad Name': {} }, client: { ping_interval: 'soon' } }),
    );
    const found = problems(() => loadConfig({ env: { PORT: 'eighty', RELAIS_ALLOW_ANONYMOUS: 'maybe' }, file }));
    expect(found.some((p) => p.startsWith('PORT:'))).toBe(true);
    expect(found.some((p) => p.startsWith('RELAIS_ALLOW_ANONYMOUS:'))).toBe(true);
    expect(found.length).toBeGreaterThanOrEqual(3);
    const cross = problems(() =>
      loadConfig({ env: {}, overrides: { namespaces: { room: { history_size: 10, join_leave: true } } } }),
    );
    expect(cross).toEqual(
      expect.arrayContaining([expect.stringContaining('history needs both'), expect.stringContaining('join_leave needs presence')]),
    );
  });

  it('has the job namespace as a latest-value channel, and refuses cache mode without history', () => {
    const { config } = loadConfig({ env: {} });
    expect(config.namespaces['batch']).toMatchObject({ force_recovery_mode: 'cache', force_recovery: true, history_size: 100, allow_publish: 'server-only' });
    expect(config.jobs).toEqual({ namespace: 'batch', status_field: 'status', terminal_statuses: ['COMPLETED', 'PARTIAL', 'FAILED'] });
    expect(config.latest_cache).toEqual({ ttl: 10_000, size: 10_000 });
    // A namespace of the same name in the configuration is taken as written.
    expect(loadConfig({ env: {}, overrides: { namespaces: { batch: { allow_subscribe: 'anonymous' } } } }).config.namespaces['batch']?.force_recovery_mode).toBe('stream');
    expect(problems(() => loadConfig({ env: {}, overrides: { namespaces: { live: { force_recovery_mode: 'cache' } } } }))).toEqual([
      expect.stringContaining('namespaces.live: force_recovery_mode cache keeps the latest publication in history'),
    ]);
    expect(problems(() => loadConfig({ env: {}, overrides: { namespaces: { live: { history_size: 1, history_ttl: '1m', force_recovery_mode: 'latest' as 'cache' } } } })).length).toBe(1);
  });

  it('reads the database settings of seed 002, timeouts in milliseconds, and refuses bad ones all at once', () => {
    const { config } = loadConfig({
      env: {
        DATABASE_URL: 'postgres://relais:secret@db.internal:5432/relais',
        DB_POOL_MAX: '30',
        DB_POOL_MIN: '5',
        DB_POOL_IDLE_TIMEOUT: '30000',
        DB_POOL_CONNECTION_TIMEOUT: '2000',
        DB_QUERY_TIMEOUT: '5s',
        DEBUG_DB_POOL: 'true',
        RELAIS_DATA_DIR: '/var/lib/relais',
      },
      overrides: { namespaces: { room: { persist: true, persist_ttl: '30d', persist_size: 10_000 } } },
    });
    expect(config.database).toEqual({
      url: 'postgres://relais:secret@db.internal:5432/relais',
      pool_max: 30,
      pool_min: 5,
      pool_idle_timeout: 30_000,
      pool_connection_timeout: 2000,
      query_timeout: 5000,
      debug_pool: true,
    });
    expect(config.data_dir).toBe('/var/lib/relais');
    expect(config.namespaces['room']).toMatchObject({ persist: true, persist_ttl: 30 * 86_400_000, persist_size: 10_000 });
    // The embedded chat namespace is persistent (the quick start keeps its history).
    expect(config.namespaces['chat']?.persist).toBe(true);
    const defaults = loadConfig({ env: {} }).config;
    expect(defaults.database).toEqual({ pool_max: 20, pool_min: 2, pool_idle_timeout: 30_000, pool_connection_timeout: 2000, query_timeout: 30_000, debug_pool: false });
    expect(defaults.data_dir).toBe('./data');

    const found = problems(() => loadConfig({ env: { DATABASE_URL: 'mysql://x', DB_POOL_MAX: 'many', DB_QUERY_TIMEOUT: 'soon', DEBUG_DB_POOL: 'perhaps' } }));
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^DB_POOL_MAX: expected a whole number/),
        expect.stringMatching(/^DEBUG_DB_POOL: expected true or false/),
        expect.stringMatching(/^DATABASE_URL \(database\.url\): expected a postgres/),
        expect.stringMatching(/^DB_QUERY_TIMEOUT \(database\.query_timeout\)/),
      ]),
    );
    const cross = problems(() =>
      loadConfig({ env: { DB_POOL_MIN: '10', DB_POOL_MAX: '4', DB_QUERY_TIMEOUT: '0' }, overrides: { namespaces: { room: { persist_ttl: '1d' } } } }),
    );
    expect(cross).toEqual(
      expect.arrayContaining([
        expect.stringContaining('DB_POOL_MIN (database.pool_min) must not exceed DB_POOL_MAX'),
        expect.stringContaining('DB_QUERY_TIMEOUT (database.query_timeout) must be above 0'),
        expect.stringContaining('namespaces.room: persist_ttl and persist_size need persist: true'),
      ]),
    );
  });

  it('keeps persistent namespaces to one shared store: over a bus without DATABASE_URL, the embedded chat falls back to bus history, a namespace made persistent by the user is refused', () => {
    const single = loadConfig({ env: {} });
    expect(single.config.namespaces['chat']?.persist).toBe(true);
    const bus = loadConfig({ env: { REDIS_URL: 'redis://127.0.0.1:6379' } });
    expect(bus.config.namespaces['chat']).toMatchObject({ persist: false, history_size: 100, history_ttl: 86_400_000 });
    expect(bus.warnings).toEqual(expect.arrayContaining([expect.stringMatching(/^namespace chat: REDIS_URL is set without DATABASE_URL/)]));
    const shared = loadConfig({ env: { NATS_URL: 'nats://127.0.0.1:4222', DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test' } });
    expect(shared.config.namespaces['chat']?.persist).toBe(true);
    expect(problems(() => loadConfig({ env: { NATS_URL: 'nats://127.0.0.1:4222' }, overrides: { namespaces: { room: { persist: true } } } }))).toEqual([
      'namespaces.room: persist with NATS_URL needs DATABASE_URL (PostgreSQL): instances over a bus cannot share an SQLite file',
    ]);
  });

  it('reads the proxy URLs from the environment and refuses a namespace hook without its URL', () => {
    const loaded = loadConfig({ env: { RELAIS_PROXY_CONNECT_URL: 'http://127.0.0.1:3000/connect', RELAIS_PROXY_PUBLISH_URL: 'http://127.0.0.1:3000/publish' } });
    expect(loaded.config.proxy.connect_url).toBe('http://127.0.0.1:3000/connect');
    expect(loaded.config.proxy.retries).toBe(1);
    const found = problems(() =>
      loadConfig({
        env: { RELAIS_PROXY_PUBLISH_URL: 'http://127.0.0.1:3000/publish' },
        overrides: { namespaces: { mod: { proxy_publish: true, proxy_subscribe: true, proxy_sub_refresh: true } }, proxy: { http_headers: ['Bad Header'] } },
      }),
    );
    expect(found.some((p) => p.includes('proxy.http_headers'))).toBe(true);
    const crossChecked = problems(() => loadConfig({ env: {}, overrides: { namespaces: { mod: { proxy_publish: true, proxy_subscribe: true, proxy_sub_refresh: true } } } }));
    expect(crossChecked).toEqual([
      'namespaces.mod: proxy_subscribe needs proxy.subscribe_url',
      'namespaces.mod: proxy_publish needs proxy.publish_url',
      'namespaces.mod: proxy_sub_refresh needs proxy.sub_refresh_url',
    ]);
  });

  it('checks named proxies: every name a namespace uses defined once, default taken, a name only with its hook', () => {
    const endpoint = 'http://127.0.0.1:3000/x';
    const loaded = loadConfig({
      env: {},
      overrides: { proxies: [{ name: 'games', endpoint }], namespaces: { games: { proxy_subscribe: true, subscribe_proxy_name: 'games', proxy_publish: true, publish_proxy_name: 'games' } } },
    });
    expect(loaded.config.proxies[0]).toMatchObject({ name: 'games', endpoint, timeout: 1000, retries: 1, http_headers: [], static_http_headers: {}, binary_encoding: false });
    const found = problems(() =>
      loadConfig({
        env: {},
        overrides: {
          proxies: [{ name: 'games', endpoint }, { name: 'games', endpoint }, { name: 'default', endpoint }],
          namespaces: { mod: { proxy_subscribe: true, subscribe_proxy_name: 'nope', sub_refresh_proxy_name: 'games', publish_proxy_name: 'default', proxy_publish: true } },
        },
      }),
    );
    expect(found).toEqual([
      'namespaces.mod: subscribe_proxy_name "nope" is not a proxy of `proxies` (games, games, default)',
      'namespaces.mod: proxy_publish needs proxy.publish_url',
      'namespaces.mod: sub_refresh_proxy_name needs proxy_sub_refresh: true',
      'proxies: the name "games" is used twice',
      'proxies: the name "default" is taken by proxy.*_url',
    ]);
  });

  it('takes a Redis Cluster or Sentinel URL and the replica acknowledgements', () => {
    const cluster = loadConfig({ env: { REDIS_URL: 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001', REDIS_REPLICA_ACKS: '1', REDIS_REPLICA_ACK_TIMEOUT: '250' } });
    expect(cluster.config).toMatchObject({ redis_url: 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001', redis_replica_acks: 1, redis_replica_ack_timeout: 250 });
    expect(loadConfig({ env: { REDIS_URL: 'redis+sentinel://127.0.0.1:26379/mymaster' } }).config.redis_replica_acks).toBe(0);
    expect(problems(() => loadConfig({ env: { REDIS_URL: 'http://127.0.0.1' } }))).toEqual([expect.stringContaining('redis+cluster://')]);
  });

  it('requires real secrets in production', () => {
    const found = problems(() => loadConfig({ env: { NODE_ENV: 'production' } }));
    expect(found).toEqual(expect.arrayContaining([expect.stringContaining('RELAIS_API_KEY'), expect.stringContaining('token key')]));
  });
});
