import type { Logger } from 'pino';
import type { RelaisConfig } from '../config/schema.js';
import { createStore, storeDescription } from '../stores/store_factory.js';
import type { Store } from '../stores/store.js';
import { StoreSweeper } from '../stores/store_sweeper.js';

/** Retention sweeps of persistent channels, one bounded step per interval. */
const SWEEP_INTERVAL_MS = 60_000;

export interface OpenStore {
  readonly store: Store;
  /** Stops the retention sweeps and closes the store. */
  close(): Promise<void>;
}

/** Whether anything configured needs the durable store: a persistent namespace. */
export function needsStore(config: Readonly<RelaisConfig>): boolean {
  return config.default_namespace.persist || Object.values(config.namespaces).some((ns) => ns.persist);
}

/**
 * Opens the durable store, brings its schema up to date and schedules retention. Rejects with
 * a message naming the store when it cannot be reached: a persistent namespace without its
 * store would acknowledge nothing.
 */
export async function openStore(config: Readonly<RelaisConfig>, logger: Logger): Promise<OpenStore> {
  const storeLogger = logger.child({ component: 'store' });
  const description = storeDescription(config);
  let store: Store | undefined;
  try {
    store = await createStore(config, storeLogger);
    const report = await store.migrate();
    if (report.applied.length > 0) storeLogger.info({ applied: report.applied, version: report.version }, 'store schema migrated');
  } catch (err) {
    await store?.close().catch(() => undefined);
    throw new Error(`Relais cannot start: ${description.replace(/^durable store: /, 'the durable store, ')}, is unreachable or refused (${err instanceof Error ? err.message : String(err)})`, {
      cause: err,
    });
  }
  const sweeper = new StoreSweeper({
    store,
    retention: (channel) => {
      const colon = channel.indexOf(':');
      const options = colon > 0 ? config.namespaces[channel.slice(0, colon)] : config.default_namespace;
      return options?.persist ? { ttlMs: options.persist_ttl, size: options.persist_size } : undefined;
    },
    idempotencyTtlMs: config.idempotency_ttl,
    logger: storeLogger,
  });
  sweeper.start(SWEEP_INTERVAL_MS);
  storeLogger.info(description);
  const opened = store;
  return {
    store: opened,
    async close() {
      await sweeper.stop();
      await opened.close();
    },
  };
}
