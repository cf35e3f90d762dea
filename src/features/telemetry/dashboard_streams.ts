/**
 * The dashboards' SSE streams of this instance and their filters: each closed window's
 * aggregates go to the streams that asked for their device and sensor, as one
 * `METRICS_UPDATE` event per stream and publication. Streams are kept one by one (two tabs
 * of one user are two streams), indexed by device so that a window's fan-out visits only
 * the streams concerned.
 */
import type { AggregateFilter } from './latest.js';
import type { TelemetryStats } from './stats.js';

/** Where a dashboard's events go: a named SSE event whose data is JSON text. */
export interface DashboardSink {
  event(name: string, data: string): void;
}

export interface DashboardStream {
  readonly sink: DashboardSink;
  readonly filter: AggregateFilter;
}

/** An aggregate on its way to dashboards: its series and its JSON text. */
export interface OutgoingAggregate {
  readonly deviceId: string;
  readonly sensorType: string;
  readonly text: string;
}

export class DashboardStreams {
  private readonly byDevice = new Map<string, Set<DashboardStream>>();
  private readonly everyDevice = new Set<DashboardStream>();
  private count = 0;

  constructor(private readonly stats: TelemetryStats) {}

  get size(): number {
    return this.count;
  }

  add(stream: DashboardStream): void {
    this.count++;
    if (stream.filter.devices === null) {
      this.everyDevice.add(stream);
      return;
    }
    for (const device of stream.filter.devices) {
      let streams = this.byDevice.get(device);
      if (!streams) {
        streams = new Set();
        this.byDevice.set(device, streams);
      }
      streams.add(stream);
    }
  }

  remove(stream: DashboardStream): void {
    if (stream.filter.devices === null) {
      if (this.everyDevice.delete(stream)) this.count--;
      return;
    }
    let removed = false;
    for (const device of stream.filter.devices) {
      const streams = this.byDevice.get(device);
      if (!streams?.delete(stream)) continue;
      removed = true;
      if (streams.size === 0) this.byDevice.delete(device);
    }
    if (removed) this.count--;
  }

  /** Sends each stream the aggregates its filter lets through, in one event; none when nothing passes. */
  deliver(aggregates: readonly OutgoingAggregate[]): void {
    if (this.count === 0) return;
    const batches = new Map<DashboardStream, string[]>();
    const offer = (stream: DashboardStream, aggregate: OutgoingAggregate): void => {
      if (stream.filter.sensors !== null && !stream.filter.sensors.has(aggregate.sensorType)) return;
      const batch = batches.get(stream);
      if (batch) batch.push(aggregate.text);
      else batches.set(stream, [aggregate.text]);
    };
    for (const aggregate of aggregates) {
      const streams = this.byDevice.get(aggregate.deviceId);
      if (streams) for (const stream of streams) offer(stream, aggregate);
      for (const stream of this.everyDevice) offer(stream, aggregate);
    }
    for (const [stream, batch] of batches) {
      stream.sink.event('METRICS_UPDATE', `[${batch.join(',')}]`);
      this.stats.updatesSent++;
    }
  }
}
