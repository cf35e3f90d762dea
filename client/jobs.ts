/**
 * Job progress helpers (docs/jobs.md): the channel of a job in the embedded `batch` namespace,
 * its terminal statuses, and the worker's side — publishing a job's state through the server
 * API, from a backend that holds the API key (never from a browser).
 */

/** Namespace of job progress in the embedded defaults: `batch:<id>`. */
export const BATCH_NAMESPACE = 'batch';

/** The statuses after which a job stream sends `complete` and ends (the server's default `jobs.terminal_statuses`). */
export const TERMINAL_STATUSES: readonly string[] = ['COMPLETED', 'PARTIAL', 'FAILED'];

/** A job's state as workers publish it; any other fields ride along. */
export interface JobState {
  readonly status: string;
  readonly progress?: number;
  readonly [field: string]: unknown;
}

/** `batch:<id>`. Throws a TypeError for an id with characters the server refuses in a channel name. */
export function batchChannel(id: string): string {
  if (!/^[A-Za-z0-9_.:@=,#+~/-]+$/.test(id)) throw new TypeError(`invalid job id "${id}": use letters, digits and _ . : @ = , # + ~ / - (no spaces)`);
  return `${BATCH_NAMESPACE}:${id}`;
}

export function isTerminalStatus(status: string, terminal: readonly string[] = TERMINAL_STATUSES): boolean {
  return terminal.includes(status);
}

export interface PublishJobStateOptions {
  /** Base URL of Relais, such as `http://127.0.0.1:8000`. */
  readonly url: string;
  /** The server API key (RELAIS_API_KEY). */
  readonly apiKey: string;
  readonly id: string;
  readonly state: JobState;
  /** Abort after this many milliseconds; 10 s by default. */
  readonly timeoutMs?: number;
}

/** The error of a publish the server refused or could not take: `code` is Relais' error code (docs/errors.md), 0 when none came back. */
export class JobPublishError extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly temporary: boolean,
  ) {
    super(message);
    this.name = 'JobPublishError';
  }
}

/**
 * Publishes a job's state on `batch:<id>` through `POST /api/publish`: subscribers get it as a
 * `progress` event (and `complete` after a terminal status), and it becomes the job's current
 * state for new subscribers and `latest`. Resolves with the position the server assigned.
 */
export async function publishJobState(options: PublishJobStateOptions): Promise<{ offset: number; epoch: string }> {
  const response = await fetch(`${options.url.replace(/\/$/, '')}/api/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': options.apiKey },
    body: JSON.stringify({ channel: batchChannel(options.id), data: options.state }),
    signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
  });
  const body = (await response.json().catch(() => ({}))) as { result?: { offset: number; epoch: string }; error?: { code: number; message: string; temporary?: boolean } };
  if (body.error) throw new JobPublishError(body.error.message, body.error.code, body.error.temporary === true);
  if (!response.ok || !body.result) throw new JobPublishError(`unexpected answer (HTTP ${response.status})`, 0, response.status >= 500);
  return body.result;
}
