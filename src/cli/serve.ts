import { ConfigError, loadConfig } from '../config/load.js';
import type { RelaisConfigInput } from '../config/schema.js';
import { chooseLogFormat, createLoggerAs } from '../server/logger.js';
import { isWorker, primaryBus, runPrimary } from '../server/workers.js';

export interface ServeOptions {
  readonly config?: string;
  readonly port?: number;
  readonly host?: string;
  /** Worker processes sharing the port (`--workers N|auto`); none: this process serves. */
  readonly workers?: number;
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
  const format = chooseLogFormat({ isTTY: process.stdout.isTTY === true, production: loaded.production });
  const logger = await createLoggerAs(format, loaded.config.log_level);
  if (options.workers !== undefined && !isWorker()) {
    await runPrimary(loaded.config, options.workers, logger);
    return;
  }
  // Imported here, not at the top: the primary of `--workers` only forks and relays the bus,
  // and the server's modules (HTTP, WebSocket, metrics, features) would only weigh on it.
  const { startServer } = await import('../server/start.js');
  const bus = primaryBus(loaded.config, logger.child({ component: 'bus' }));
  const server = await startServer(loaded, logger, bus ? { bus } : {});
  if (format === 'pretty' && process.stderr.isTTY && !isWorker()) {
    // A person at a terminal gets the addresses in plain words, after the log lines; JSON
    // logs are for a program, which a banner among them would only disturb.
    const host = server.host === '0.0.0.0' || server.host === '::' ? 'localhost' : server.host;
    console.error(
      [
        '',
        `  Relais is running (${server.node.broker.kind === 'memory' ? 'standalone, in-memory bus' : `${server.node.broker.kind} bus`})`,
        `  WebSocket  ws://${host}:${server.port}/connection/websocket`,
        `  SSE        http://${host}:${server.port}/sse?channel=chat:general`,
        `  HTTP API   http://${host}:${server.port}/api/<method>`,
        `  Metrics    http://${host}:${server.port}/metrics`,
        '',
        '  Try: npm run -s relais -- chat --user alice --room general',
        '',
      ].join('\n'),
    );
  }
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
