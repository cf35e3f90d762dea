import type { LatencySummary } from './metrics.js';
import type { MachineInfo } from './procstat.js';
import type { TargetName } from './targets/target.js';

export const SCENARIO_IDS = ['a', 'b', 'c', 'd', 'e', 'f'] as const;
export type ScenarioId = (typeof SCENARIO_IDS)[number];

export function isScenarioId(value: string): value is ScenarioId {
  return (SCENARIO_IDS as readonly string[]).includes(value);
}

/** Largest p99 (ms) a step may have and still count as sustained. */
export const P99_LIMIT_MS = 100;

/** One rate step of a stepped scenario, for one target. */
export interface StepResult {
  /** Publications per second asked of the publisher. */
  readonly rate: number;
  /** Publications per second it managed (it holds back while its socket is backed up). */
  readonly actualRate: number;
  readonly sent: number;
  readonly expected: number;
  /** Deliveries of the step, duplicates included. */
  readonly received: number;
  readonly loss: number;
  readonly duplicates: number;
  readonly gaps: number;
  readonly offsetGaps: number;
  readonly offsetDuplicates: number;
  readonly closed: number;
  readonly closeReason: string;
  readonly publishErrors: number;
  readonly publishError: string;
  readonly deliveredPerSec: number;
  readonly latencyMs: LatencySummary;
  /** Server CPU time (every server process) during the step, over unique deliveries, µs. */
  readonly serverCpuPerDeliveryUs: number | null;
  /** Server CPU time over wall time of the step, in % of one core (2 instances can exceed 100). */
  readonly serverCpuPercent: number | null;
  /** Load generators' CPU (publisher + subscribers) over unique deliveries, µs. */
  readonly loadCpuPerDeliveryUs: number | null;
  /** Redis server CPU over unique deliveries, µs (multi-instance targets; Redis is shared). */
  readonly redisCpuPerDeliveryUs: number | null;
  readonly serverRssBytes: number | null;
  /**
   * What the server processes wrote during the step (every write syscall: mostly the
   * subscribers' sockets), over unique deliveries. Absent from runs saved before it existed.
   */
  readonly serverWriteBytesPerDelivery?: number | null;
  /** Write syscalls of the server processes during the step, over unique deliveries. */
  readonly serverWritesPerDelivery?: number | null;
  /** Loss 0, no duplicates, no dropped connection, no publish error, publisher on pace and p99 under the limit. */
  readonly ok: boolean;
  /** Why the step is not sustained ("" when it is). */
  readonly failure: string;
}

export interface SteppedTargetResult {
  readonly target: TargetName;
  readonly error: string | null;
  readonly connectMs: number | null;
  readonly steps: StepResult[];
  /** Largest rate (publications/s) among sustained steps; null if none. */
  readonly maxSustainedRate: number | null;
  readonly maxSustainedDeliveriesPerSec: number | null;
}

export interface SteppedScenarioResult {
  readonly kind: 'stepped';
  readonly id: ScenarioId;
  readonly title: string;
  readonly rooms: number;
  readonly subscribersPerRoom: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly targets: SteppedTargetResult[];
}

export interface IdleStep {
  readonly requested: number;
  /** Connections asked for after the file-descriptor cap. */
  readonly planned: number;
  readonly connected: number;
  readonly failed: number;
  readonly firstError: string;
  readonly note: string;
  readonly rssBaselineBytes: number | null;
  readonly rssLoadedBytes: number | null;
  readonly bytesPerConnection: number | null;
  /**
   * The same at rest: the baseline read once V8's memory reducer has run after start-up, the
   * loaded RSS at the end of the idle CPU window. Absent in runs before these fields.
   */
  readonly rssSettledBaselineBytes?: number | null;
  readonly rssIdledBytes?: number | null;
  readonly bytesPerConnectionSettled?: number | null;
  /** The same two readings with the file pages the server's processes share counted once. */
  readonly rssFilesOnceSettledBaselineBytes?: number | null;
  readonly rssFilesOnceIdledBytes?: number | null;
  /** Server CPU while the connections sit idle (pings only), in percent of one core per 10,000 connections. */
  readonly idleCpuPer10k: number | null;
}

export interface IdleTargetResult {
  readonly target: TargetName;
  readonly error: string | null;
  readonly steps: IdleStep[];
}

export interface IdleScenarioResult {
  readonly kind: 'idle';
  readonly id: ScenarioId;
  readonly title: string;
  readonly subscribersPerRoom: number;
  readonly settleMs: number;
  /** Length of the idle CPU reading, after the RSS reading. */
  readonly cpuWindowMs: number;
  readonly settledBaselineMs?: number;
  readonly targets: IdleTargetResult[];
}

export interface RecoveryRound {
  readonly clients: number;
  readonly positioned: number;
  readonly recovered: number;
  readonly notRecovered: number;
  readonly failed: number;
  readonly firstError: string;
  /** Publications replayed per recovered client, on average. */
  readonly replayedMean: number | null;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
  /** p50 / p99 of the part spent until the socket was open (TCP + HTTP upgrade). */
  readonly openP50Ms: number | null;
  readonly openP99Ms: number | null;
  /** p50 / p99 of the part spent until the connect reply (includes the open). */
  readonly readyP50Ms: number | null;
  readonly readyP99Ms: number | null;
  /** SYNs dropped on full accept queues during the reconnect, machine-wide (null: unreadable). */
  readonly listenOverflows: number | null;
  /**
   * CPU the server processes and the load processes spent from the reconnect order to the
   * last subscribe reply (null: a process vanished). The server's share is the work the burst
   * costs Relais itself, whatever the clients sharing its cores cost.
   */
  readonly serverCpuMs: number | null;
  readonly loadCpuMs: number | null;
  /** The server's CPU per second of live fan-out alone, read before the drop (every client live). */
  readonly fanoutCpuMsPerS?: number | null;
  /** From the reconnect order to the last subscribe reply. */
  readonly windowMs?: number;
  /** Publishing stopped before the reconnect: the server's CPU over the window is the reconnects' alone. */
  readonly quiet?: boolean;
  /** Reconnects spread at random over this many ms (0 or absent: all at once). */
  readonly spreadMs?: number;
  /** Over the whole round (live and replayed deliveries). */
  readonly expected: number;
  readonly loss: number;
  readonly duplicates: number;
  readonly offsetGaps: number;
  /** Publications whose offset was not above the last one on that connection. */
  readonly offsetDuplicates: number;
}

export interface RecoveryTargetResult {
  readonly target: TargetName;
  /** Peers have no recovery: reported as n/a. */
  readonly applicable: boolean;
  readonly error: string | null;
  readonly rounds: RecoveryRound[];
}

export interface RecoveryScenarioResult {
  readonly kind: 'recovery';
  readonly id: ScenarioId;
  readonly title: string;
  readonly clients: number;
  readonly rate: number;
  readonly downMs: number;
  readonly targets: RecoveryTargetResult[];
}

export type ScenarioResult = SteppedScenarioResult | IdleScenarioResult | RecoveryScenarioResult;

export interface RunResult {
  readonly startedAt: string;
  finishedAt: string;
  readonly preset: string;
  readonly command: string;
  /** Commit of the checkout, "+ local changes" when src/ differs from it (dist/ is built from src/). */
  readonly revision: string;
  readonly machine: MachineInfo;
  readonly scenarios: ScenarioResult[];
}
