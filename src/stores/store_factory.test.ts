import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/load.js';
import type { StoreLogger } from './store.js';
import { createStore, storeDescription } from './store_factory.js';

// The composition root's pino logger is what the stores log through.
const _pinoFits: StoreLogger = pino({ level: 'silent' });

describe('createStore', () => {
  it('opens SQLite under RELAIS_DATA_DIR without DATABASE_URL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relais-factory-'));
    try {
      const { config } = loadConfig({ env: { RELAIS_DATA_DIR: join(dir, 'data') } });
      const store = await createStore(config, pino({ level: 'silent' }));
      expect(store.kind).toBe('sqlite');
      await store.migrate();
      await store.ping();
      await store.close();
      expect(storeDescription(config)).toContain(join(dir, 'data', 'relais.sqlite'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('builds a PostgreSQL store from DATABASE_URL, its password kept out of the description', async () => {
    const { config } = loadConfig({ env: { DATABASE_URL: 'postgres://relais:hunter2@127.0.0.1:1/relais', DB_POOL_MIN: '0', DB_POOL_MAX: '3' } });
    const store = await createStore(config, pino({ level: 'silent' }));
    expect(store.kind).toBe('postgres');
    await store.close();
    expect(storeDescription(config)).toBe('durable store: PostgreSQL at postgres://***@127.0.0.1:1/relais, pool 0-3');
  });
});
