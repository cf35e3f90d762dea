/**
 * The SQLite store: the contract suite over a file in a fresh temporary folder per test, a
 * second instance being a second connection to the same file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { describeStoreContract, type StoreFactoryOptions } from '../store.contract.js';
import { SqliteStore } from './store_sqlite.js';

let folders: string[] = [];
let current = '';

function make(options?: StoreFactoryOptions): SqliteStore {
  return new SqliteStore({
    path: current,
    ...(options?.shortTimeouts ? { busyTimeoutMs: 300 } : {}),
    ...(options?.migrations ? { migrations: options.migrations } : {}),
  });
}

describeStoreContract('sqlite', {
  fresh: (options) => {
    const folder = mkdtempSync(join(tmpdir(), 'relais-store-'));
    folders.push(folder);
    current = join(folder, 'data', 'relais.sqlite');
    return Promise.resolve(make(options));
  },
  sibling: (options) => Promise.resolve(make(options)),
  holdWriteLock: () => {
    const other = new BetterSqlite3(current);
    other.exec('BEGIN IMMEDIATE');
    return Promise.resolve(() => {
      other.exec('ROLLBACK');
      other.close();
      return Promise.resolve();
    });
  },
  cleanup: () => {
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
    folders = [];
    return Promise.resolve();
  },
});

describe('SQLite store file', () => {
  it('creates its folder, runs in WAL mode and keeps messages across reopening', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'relais-store-'));
    try {
      const path = join(folder, 'nested', 'dir', 'relais.sqlite');
      const first = new SqliteStore({ path });
      await first.migrate();
      await first.append([{ channel: 'chat:a', data: '{"n":1}' as never, time: 1 }]);
      await first.close();
      const probe = new BetterSqlite3(path, { readonly: true });
      expect(probe.pragma('journal_mode', { simple: true })).toBe('wal');
      probe.close();
      const second = new SqliteStore({ path });
      await second.migrate();
      expect((await second.range('chat:a', { limit: 5 })).messages.map((m) => m.data)).toEqual(['{"n":1}']);
      await second.close();
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
