import { ConfigError, loadConfig } from '../config/load.js';
import type { RelaisConfigInput } from '../config/schema.js';
import { startServer } from '../server/start.js';

export interface ServeOptions {
  readonly config?: string;
  readonly port?: number;
  readonly host?: string;
}

/** `relais serve`: runs a node until SIGTERM or SIGINT, then stops gracefully. */
export async function serve(options: ServeOptions): Promise<void> {
  const overrides: RelaisConfigInput = {};
  if (options.port !== undefined) overrides.port = options.port;
  if (options.host !== undefined) overrides.host = options.host;
  let loaded;
  try {
    loaded = loadConfig({ env: process.env, ...(options.config ? { file: options.config } : {}), overrides });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const server = await startServer(loaded);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    server.logger.info({ signal }, 'shutting down: clients are told to reconnect elsewhere');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
