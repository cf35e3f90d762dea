import { pino, type DestinationStream, type Logger } from 'pino';

/** `json`: one JSON object per line, for machines. `pretty`: one readable line per entry, for a person. */
export type LogFormat = 'json' | 'pretty';

export interface LogOutput {
  /** Whether the logs go to a terminal (`process.stdout.isTTY` for the CLI). */
  readonly isTTY: boolean;
  /** NODE_ENV=production. */
  readonly production: boolean;
}

/**
 * Readable lines for a person at a terminal outside production; JSON lines everywhere else
 * (pipes, files, log shippers, containers, production), where a program reads them.
 */
export function chooseLogFormat(output: LogOutput): LogFormat {
  return output.isTTY && !output.production ? 'pretty' : 'json';
}

export interface LoggerOptions {
  /** Where the lines go; standard output when absent. */
  readonly destination?: DestinationStream;
}

const BASE = { service: 'relais' };
// Secrets and message bodies never reach the logs, whatever the format.
const REDACT = { paths: ['token', '*.token', 'api_key', '*.api_key', 'data', '*.data', 'req.headers.authorization'], censor: '[redacted]' };

/** The JSON logger of a server; `level` is a pino level (`info`, `debug`, ...). */
export function createLogger(level: string, options: LoggerOptions = {}): Logger {
  const settings = { level, base: BASE, redact: REDACT };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/**
 * The logger in the given format. pino-pretty is loaded only for `pretty`, and formats in
 * this thread, synchronously, so that the last lines before an exit are not lost.
 */
export async function createLoggerAs(format: LogFormat, level: string, options: LoggerOptions = {}): Promise<Logger> {
  if (format === 'json') return createLogger(level, options);
  const { default: pretty } = await import('pino-pretty');
  const stream = pretty({
    sync: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
    ...(options.destination ? { destination: options.destination, colorize: false } : {}),
  });
  return pino({ level, base: BASE, redact: REDACT }, stream);
}
