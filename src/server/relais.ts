import type { Logger } from 'pino';
import { ConfigError, loadConfig } from '../config/load.js';
import type { RelaisConfigInput } from '../config/schema.js';
import { createLogger } from './logger.js';
import { startServer, type RunningServer } from './start.js';

export interface StartRelaisOptions {
  /** The server's logger; by default JSON lines on standard output at the configuration's `log_level`. */
  readonly logger?: Logger;
  /**
   * The rules of NODE_ENV=production: `api_key` and a token key are required instead of
   * falling back to development secrets, and `host` defaults to 0.0.0.0. Default false.
   */
  readonly production?: boolean;
}

/**
 * Starts a Relais server from code and resolves once it listens.
 *
 * `config` has the shape of a configuration file (docs/configuration.md), as a plain object
 * laid over the embedded defaults, and goes through the same schema: every problem is
 * reported at once in a ConfigError, and nothing starts. It is the whole configuration:
 * no environment variable and no file is read. `port: 0` listens on a free port, given as
 * `port` of the result. `close()` stops it gracefully (clients are told to reconnect).
 */
export async function startRelais(config: RelaisConfigInput = {}, options: StartRelaisOptions = {}): Promise<RunningServer> {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(['the configuration must be a plain object']);
  }
  const loaded = loadConfig({ env: options.production ? { NODE_ENV: 'production' } : {}, overrides: config });
  return startServer(loaded, options.logger ?? createLogger(loaded.config.log_level));
}
