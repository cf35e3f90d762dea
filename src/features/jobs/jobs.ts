/**
 * Job progress (seed 001; docs/jobs.md): a backend worker publishes each state of a job on
 * `batch:<id>` (a latest-value channel), and SSE streams of that channel send the current state
 * first, then each change as a `progress` event, and after a terminal status a `complete`
 * event, then end. The namespace and terminal statuses come from the `jobs` settings.
 */
import type { Logger } from 'pino';
import type { RelaisConfig } from '../../config/schema.js';
import type { Publication } from '../../core/publication.js';
import type { SseChannelEvents } from '../../transports/sse/channel_events.js';

/** The readable route of one job's stream: `/streams/batches/<id>`, the job's states as they are. */
export const JOB_STREAM_ROUTE = '/streams/batches/:id';

export const PROGRESS_EVENT = 'progress';
export const COMPLETE_EVENT = 'complete';

/** What the jobs feature needs of the server: where SSE event names of a namespace are set. */
export interface JobsHost {
  useChannelEvents(namespace: string, events: SseChannelEvents): void;
}

export interface RunningJobs {
  readonly namespace: string;
  /** The channel of job `id`: `<namespace>:<id>` (the name is checked when the stream opens). */
  channelOf(id: string): string;
  /** Whether a job state (a publication's data) has a terminal status. */
  isFinal(pub: Publication): boolean;
}

/**
 * Recognises terminal job states. A publication's data is parsed once, whatever the number of
 * streams that ask: the answer is kept with the publication object.
 */
export class TerminalStatuses {
  private readonly terminal: ReadonlySet<string>;
  private readonly answers = new WeakMap<Publication, boolean>();

  constructor(
    private readonly field: string,
    statuses: readonly string[],
  ) {
    this.terminal = new Set(statuses);
  }

  isFinal(pub: Publication): boolean {
    let answer = this.answers.get(pub);
    if (answer === undefined) {
      answer = this.terminal.has(statusOf(pub.data, this.field) ?? '');
      this.answers.set(pub, answer);
    }
    return answer;
  }
}

/** The `field` of a JSON object, when it is a string; undefined for anything else (never throws). */
function statusOf(data: string, field: string): string | undefined {
  try {
    const value: unknown = JSON.parse(data);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const status = (value as Record<string, unknown>)[field];
    return typeof status === 'string' ? status : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Turns job progress on when the configuration has the jobs namespace (the embedded `batch`);
 * undefined, and said in the log, when it does not.
 */
export function attachJobs(config: Readonly<RelaisConfig>, host: JobsHost, logger: Logger): RunningJobs | undefined {
  const { namespace, status_field, terminal_statuses } = config.jobs;
  const options = config.namespaces[namespace];
  if (!options) {
    logger.warn(`job progress is off: no namespace "${namespace}" (jobs.namespace) in the configuration`);
    return undefined;
  }
  if (options.force_recovery_mode !== 'cache') {
    logger.info(`namespace "${namespace}" is not a latest-value channel (force_recovery_mode: cache): a new job stream starts without the current state`);
  }
  const terminal = new TerminalStatuses(status_field, terminal_statuses);
  host.useChannelEvents(namespace, { event: PROGRESS_EVENT, finalEvent: COMPLETE_EVENT, isFinal: (pub) => terminal.isFinal(pub) });
  return {
    namespace,
    channelOf: (id) => `${namespace}:${id}`,
    isFinal: (pub) => terminal.isFinal(pub),
  };
}
