import { fileURLToPath } from 'node:url';
import { spawnBenchProcess, type Child } from '../children.js';
import { Histogram } from '../metrics.js';
import { emptyStepCounts, type Endpoint, type FromPublisher, type RecoveryReport, type RunCommand } from '../load/messages.js';

const SUBSCRIBER = fileURLToPath(new URL('../load/subscriber.ts', import.meta.url));
const PUBLISHER = fileURLToPath(new URL('../load/publisher.ts', import.meta.url));
const START_TIMEOUT_MS = 20_000;
const REPLY_TIMEOUT_MS = 15_000;

export interface GroupSpec {
  readonly endpoint: Endpoint;
  readonly connections: number;
  /** Connection g joins room g % rooms. */
  readonly rooms: number;
  readonly processes: number;
  readonly localAddresses: readonly string[];
  /** Connections per source address. */
  readonly perAddress: number;
  /** Handshakes in flight per process. */
  readonly concurrency: number;
  readonly connectTimeoutMs: number;
  /** CPUs the processes run on (`taskset -c` list); anywhere when absent. */
  readonly cpus?: string | undefined;
}

/** Step counts merged over the subscriber processes. */
export interface MergedStats extends ReturnType<typeof emptyStepCounts> {
  readonly latency: Histogram;
}

export interface ConnectOutcome {
  readonly ok: number;
  readonly failed: number;
  readonly firstError: string;
  readonly ms: number;
}

/** Subscriber processes holding a target's subscribed connections. */
export class SubscriberGroup {
  private constructor(readonly children: readonly Child[]) {}

  get pids(): number[] {
    return this.children.map((c) => c.pid);
  }

  /** Starts the processes and opens and subscribes every connection. */
  static async start(spec: GroupSpec): Promise<{ group: SubscriberGroup; outcome: ConnectOutcome }> {
    const processes = Math.max(1, Math.min(spec.processes, spec.connections));
    const children = Array.from({ length: processes }, (_, i) => spawnBenchProcess(`subscribers#${i}`, SUBSCRIBER, {}, spec.cpus));
    const group = new SubscriberGroup(children);
    try {
      await Promise.all(children.map((c) => c.next('ready', START_TIMEOUT_MS)));
      const share = Math.ceil(spec.connections / processes);
      children.forEach((child, i) => {
        const first = i * share;
        child.send({
          type: 'connect',
          endpoint: spec.endpoint,
          first,
          count: Math.max(0, Math.min(share, spec.connections - first)),
          rooms: spec.rooms,
          localAddresses: spec.localAddresses,
          perAddress: spec.perAddress,
          concurrency: spec.concurrency,
          timeoutMs: spec.connectTimeoutMs,
        });
      });
      const replies = await Promise.all(children.map((c) => c.next('connected', spec.connectTimeoutMs + REPLY_TIMEOUT_MS)));
      const outcome: ConnectOutcome = {
        ok: replies.reduce((n, r) => n + r.ok, 0),
        failed: replies.reduce((n, r) => n + r.failed, 0),
        firstError: replies.find((r) => r.firstError !== '')?.firstError ?? '',
        ms: Math.max(...replies.map((r) => r.ms)),
      };
      return { group, outcome };
    } catch (err) {
      await group.stop();
      throw err;
    }
  }

  async begin(step: number): Promise<void> {
    for (const child of this.children) child.send({ type: 'begin', step });
    await Promise.all(this.children.map((c) => c.next('begun', REPLY_TIMEOUT_MS)));
  }

  /** Unique deliveries of the step so far, and the last time anything arrived. */
  async poll(): Promise<{ unique: number; lastAnyRecvAt: number }> {
    for (const child of this.children) child.send({ type: 'poll' });
    const replies = await Promise.all(this.children.map((c) => c.next('progress', REPLY_TIMEOUT_MS)));
    return { unique: replies.reduce((n, r) => n + r.unique, 0), lastAnyRecvAt: Math.max(...replies.map((r) => r.lastAnyRecvAt)) };
  }

  async end(): Promise<MergedStats> {
    for (const child of this.children) child.send({ type: 'end' });
    const replies = await Promise.all(this.children.map((c) => c.next('stats', REPLY_TIMEOUT_MS)));
    const merged: MergedStats = { ...emptyStepCounts(), latency: new Histogram() };
    for (const r of replies) {
      merged.received += r.received;
      merged.duplicates += r.duplicates;
      merged.gaps += r.gaps;
      merged.stale += r.stale;
      merged.malformed += r.malformed;
      merged.offsetGaps += r.offsetGaps;
      merged.offsetDuplicates += r.offsetDuplicates;
      merged.closed += r.closed;
      if (merged.closeReason === '') merged.closeReason = r.closeReason;
      if (r.firstRecvAt > 0 && (merged.firstRecvAt === 0 || r.firstRecvAt < merged.firstRecvAt)) merged.firstRecvAt = r.firstRecvAt;
      merged.lastRecvAt = Math.max(merged.lastRecvAt, r.lastRecvAt);
      merged.latency.merge(r.latency);
    }
    return merged;
  }

  /** Every connection closes abruptly, remembering its stream position. */
  async drop(): Promise<{ count: number; positioned: number }> {
    for (const child of this.children) child.send({ type: 'drop' });
    const replies = await Promise.all(this.children.map((c) => c.next('dropped', REPLY_TIMEOUT_MS)));
    return { count: replies.reduce((n, r) => n + r.count, 0), positioned: replies.reduce((n, r) => n + r.positioned, 0) };
  }

  /** Every connection reconnects at once (or spread at random over spreadMs) and resubscribes with recovery. */
  async reconnect(timeoutMs: number, spreadMs = 0): Promise<RecoveryReport[]> {
    for (const child of this.children) child.send({ type: 'reconnect', concurrency: 1_000_000, timeoutMs, spreadMs });
    return Promise.all(this.children.map((c) => c.next('recovery', timeoutMs + REPLY_TIMEOUT_MS)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.children.map((c) => c.kill()));
  }
}

type Done = Extract<FromPublisher, { type: 'done' }>;

/** The publisher process and its one connection. */
export class Publisher {
  private constructor(readonly child: Child) {}

  /** `cpus`: where the process runs (`taskset -c` list); anywhere when absent. */
  static async start(endpoint: Endpoint, cpus?: string): Promise<Publisher> {
    const child = spawnBenchProcess('publisher', PUBLISHER, {}, cpus);
    try {
      await child.next('ready', START_TIMEOUT_MS);
      child.send({ type: 'connect', endpoint });
      await child.next('online', REPLY_TIMEOUT_MS);
      return new Publisher(child);
    } catch (err) {
      await child.kill();
      throw err;
    }
  }

  /** Starts a run; `measuring` resolves when the warm-up ends, `done` when the run does. */
  run(command: Omit<RunCommand, 'type'>): { measuring: Promise<number>; done: Promise<Done> } {
    this.child.send({ type: 'run', ...command });
    const total = command.warmupMs + command.measureMs + REPLY_TIMEOUT_MS;
    const measuring = this.child.next('measuring', total).then((m) => m.at);
    const done = this.child.next('done', total);
    // Whoever awaits only one of them must not leave the other's rejection unhandled.
    measuring.catch(() => undefined);
    done.catch(() => undefined);
    return { measuring, done };
  }

  stop(): Promise<void> {
    return this.child.kill();
  }
}
