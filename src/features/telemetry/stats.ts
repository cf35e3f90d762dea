/**
 * Counters of the telemetry feature, plain numbers bumped on the ingest path; the metrics
 * endpoint reads them at scrape time (see metrics.ts).
 */
import type { RejectReason } from './reading.js';

/** Where readings come from. */
export type ReadingSource = 'mqtt' | 'http';

export class TelemetryStats {
  /** Readings accepted into a window, by source. */
  readonly accepted = new Map<ReadingSource, number>();
  /** Readings refused, by reason. */
  readonly rejected = new Map<RejectReason, number>();
  /** Readings from slightly ahead of the clock, counted at their arrival time. */
  clamped = 0;
  /** Windows this instance closed (and reported to the merging instance). */
  windowsClosed = 0;
  /** Merged windows this instance published, and the device-sensor aggregates in them. */
  windowsPublished = 0;
  aggregatesPublished = 0;
  /** Partials of other instances that came after their window was published (their readings are lost). */
  latePartials = 0;
  /** Merged windows the bus did not accept. */
  publishFailures = 0;
  /** METRICS_UPDATE events written to dashboard streams. */
  updatesSent = 0;

  accept(source: ReadingSource): void {
    this.accepted.set(source, (this.accepted.get(source) ?? 0) + 1);
  }

  reject(reason: RejectReason): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
  }
}
