import type { Child } from '../children.js';
import type { Endpoint } from '../load/messages.js';

/** `relais-baseline`: Relais built from another checkout (`--baseline <dir>`), to compare a change in one run. */
/** `relais-workers`: one Relais server of N worker processes (relais serve --workers N, 2 by default), the bus built into its primary. */
/** `relais-protobuf`: the `relais` server, its clients speaking the Protobuf protocol. */
export const TARGET_NAMES = ['ws', 'socketio', 'socketio-redis', 'relais', 'relais-protobuf', 'relais-redis', 'relais-baseline', 'relais-workers'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

export function isTargetName(value: string): value is TargetName {
  return (TARGET_NAMES as readonly string[]).includes(value);
}

/** Targets that run as two instances over the local Redis. */
export const MULTI_INSTANCE: readonly TargetName[] = ['socketio-redis', 'relais-redis'];

export interface TargetOptions {
  /** Publications kept per channel (Relais). */
  readonly historySize: number;
  readonly redisUrl: string;
  /** A checkout of Relais with its build (`dist/`), run as the `relais-baseline` target. */
  readonly baselineRoot?: string;
  /** Worker processes of the `relais-workers` target (default 2). */
  readonly workers?: number;
  /** Node flags of the Relais server processes only (not of the load processes), e.g. V8 heap flags to compare. */
  readonly serverNodeFlags?: readonly string[];
  /** `--write-delay`: Relais's `client.write_delay`, ms (0, its default, when absent). */
  readonly relaisWriteDelayMs?: number;
  /** `--relais-config`: merged over the Relais targets' config, an object per top-level key. */
  readonly relaisConfig?: Readonly<Record<string, unknown>>;
  /** `--pin`: where the servers and the load processes run; anywhere when absent. */
  readonly pin?: Pinning;
}

/**
 * CPU sets (`taskset -c` lists) kept apart so that a scenario measures the servers, not the
 * shared machine: every target's server processes (and the run's own Redis) on `servers`,
 * the subscriber and publisher processes on `load`.
 */
export interface Pinning {
  readonly servers: string;
  readonly load: string;
}

/** Processes that share a target's connections: the open-files limit applies to each. */
export function connectionProcesses(name: TargetName, options: TargetOptions): number {
  return name === 'relais-workers' ? (options.workers ?? 2) : 1;
}

/** Server process(es) of one target, up and listening. */
export interface RunningTarget {
  readonly name: TargetName;
  readonly endpoint: Endpoint;
  /** The server processes: their CPU time and RSS are the target's cost. */
  readonly servers: readonly Child[];
  /** Shared helpers whose CPU is reported apart (the Redis server), when readable. */
  readonly auxPids: readonly number[];
  stop(): Promise<void>;
}
