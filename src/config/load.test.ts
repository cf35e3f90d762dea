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

  it('requires real secrets in production', () => {
    const found = problems(() => loadConfig({ env: { NODE_ENV: 'production' } }));
    expect(found).toEqual(expect.arrayContaining([expect.stringContaining('RELAIS_API_KEY'), expect.stringContaining('token key')]));
  });
});
