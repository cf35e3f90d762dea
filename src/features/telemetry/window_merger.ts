/**
 * Windows across instances: each instance closes its own windows and sends their partial
 * aggregates to every instance over the bus; one instance, the merging one, adds up the
 * partials of a window and publishes the result once. A reading enters exactly one instance
 * (an MQTT shared subscription, the embedded broker a device is connected to, or the HTTP
 * request), so every reading is counted once and a window is published whole.
 */
import type { Logger } from 'pino';
import type { JsonText } from '../../core/json.js';
import { mergeSeries, type ClosedWindow, type SeriesAggregate } from './window_aggregator.js';
import type { TelemetryStats } from './stats.js';

/** One part of one instance's closed window, as sent over the bus. */
interface PartialMessage {
  /** The sending instance's node id. */
  readonly n: string;
  readonly w: number;
  readonly e: number;
  /** Part number, from 0, and the number of parts of this instance's window. */
  readonly p: number;
  readonly t: number;
  /** Series: deviceId, sensorType, count, sum, min, max. */
  readonly s: readonly (readonly [string, string, number, number, number, number])[];
}

/** Series per bus message: keeps a message well under the buses' payload limits (NATS: 1 MB). */
const SERIES_PER_PART = 2000;

export interface WindowMergerDeps {
  readonly nodeId: string;
  /** Ids of the nodes this one knows alive (itself included), from the cluster's heartbeats. */
  readonly liveNodes: () => Iterable<string>;
  /** Sends a message to every instance, this one included. */
  readonly send: (data: JsonText) => Promise<void>;
  /** Publishes a merged window (non-empty); called once per window, by the merging instance. */
  readonly publish: (window: ClosedWindow) => Promise<void>;
  readonly windowMs: number;
  readonly mergeWaitMs: number;
  readonly stats: TelemetryStats;
  readonly logger: Logger;
}

interface PendingWindow {
  readonly windowEnd: number;
  readonly series: Map<string, Map<string, SeriesAggregate>>;
  /** Parts received per node, and how many each node sends. */
  readonly parts: Map<string, { received: number; total: number }>;
  readonly timer: NodeJS.Timeout;
}

export class WindowMerger {
  private readonly pending = new Map<number, PendingWindow>();
  /** Windows this instance published or gave up on: a part arriving after is late. */
  private readonly finished = new Set<number>();
  /** Instances that sent partials, by node id, with when they were last heard (ms). */
  private readonly heard = new Map<string, number>();
  private stopped = false;

  constructor(private readonly deps: WindowMergerDeps) {}

  /** Sends this instance's closed window to the merging instance (empty ones too: they say "nothing from me"). */
  async report(window: ClosedWindow): Promise<void> {
    const total = Math.max(1, Math.ceil(window.series.length / SERIES_PER_PART));
    for (let part = 0; part < total; part++) {
      const slice = window.series.slice(part * SERIES_PER_PART, (part + 1) * SERIES_PER_PART);
      const message: PartialMessage = {
        n: this.deps.nodeId,
        w: window.windowStart,
        e: window.windowEnd,
        p: part,
        t: total,
        s: slice.map((s) => [s.deviceId, s.sensorType, s.count, s.sum, s.min, s.max] as const),
      };
      await this.deps.send(JSON.stringify(message) as JsonText);
    }
  }

  /** A partial from the bus (every instance gets every one; only the merging instance keeps them). */
  receive(data: JsonText): void {
    if (this.stopped) return;
    let message: PartialMessage;
    try {
      message = JSON.parse(data) as PartialMessage;
    } catch {
      return;
    }
    const now = Date.now();
    this.heard.set(message.n, now);
    if (!this.isMerger(now)) return;
    if (this.finished.has(message.w)) {
      this.deps.stats.latePartials++;
      this.deps.logger.warn({ node: message.n, windowStart: message.w }, 'telemetry partial arrived after its window was published; its readings are not counted');
      return;
    }
    let window = this.pending.get(message.w);
    if (!window) {
      const timer = setTimeout(() => this.finish(message.w), this.deps.mergeWaitMs);
      timer.unref();
      window = { windowEnd: message.e, series: new Map(), parts: new Map(), timer };
      this.pending.set(message.w, window);
    }
    for (const [deviceId, sensorType, count, sum, min, max] of message.s) {
      let sensors = window.series.get(deviceId);
      if (!sensors) {
        sensors = new Map();
        window.series.set(deviceId, sensors);
      }
      const series = sensors.get(sensorType);
      if (series) mergeSeries(series, { count, sum, min, max });
      else sensors.set(sensorType, { deviceId, sensorType, count, sum, min, max });
    }
    const parts = window.parts.get(message.n) ?? { received: 0, total: message.t };
    parts.received++;
    window.parts.set(message.n, parts);
    if (this.complete(window, now)) this.finish(message.w);
  }

  /** Ends the merges in progress without publishing them (shutdown). */
  stop(): void {
    this.stopped = true;
    for (const window of this.pending.values()) clearTimeout(window.timer);
    this.pending.clear();
  }

  /** Instances expected to report a window: those alive by heartbeat, and those heard from recently. */
  private expected(now: number): Set<string> {
    const ids = new Set<string>(this.deps.liveNodes());
    ids.add(this.deps.nodeId);
    // Heard within a few windows: an instance whose heartbeat has not arrived yet still counts.
    const forgetAfter = 3 * this.deps.windowMs + this.deps.mergeWaitMs + 5000;
    for (const [id, at] of this.heard) {
      if (now - at > forgetAfter) this.heard.delete(id);
      else ids.add(id);
    }
    return ids;
  }

  /** The instance with the smallest node id among those expected merges: every instance computes the same. */
  private isMerger(now: number): boolean {
    for (const id of this.expected(now)) if (id < this.deps.nodeId) return false;
    return true;
  }

  private complete(window: PendingWindow, now: number): boolean {
    for (const id of this.expected(now)) {
      const parts = window.parts.get(id);
      if (!parts || parts.received < parts.total) return false;
    }
    return true;
  }

  private finish(windowStart: number): void {
    const window = this.pending.get(windowStart);
    if (!window) return;
    clearTimeout(window.timer);
    this.pending.delete(windowStart);
    this.finished.add(windowStart);
    // Only the last few windows can still get a part.
    for (const start of this.finished) if (start < windowStart - 10 * this.deps.windowMs) this.finished.delete(start);
    const series: SeriesAggregate[] = [];
    for (const sensors of window.series.values()) for (const s of sensors.values()) series.push(s);
    if (series.length === 0) return;
    this.deps.publish({ windowStart, windowEnd: window.windowEnd, series }).catch((err: unknown) => {
      this.deps.stats.publishFailures++;
      this.deps.logger.error({ err, windowStart }, 'telemetry window could not be published');
    });
  }
}
