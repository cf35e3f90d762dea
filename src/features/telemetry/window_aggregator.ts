/**
 * Tumbling windows of readings per device and sensor, aggregated as readings arrive: each
 * series keeps a count, a sum, a min and a max, never the values themselves.
 */
import type { Reading } from './reading.js';

/** The running aggregate of one device and sensor in one window (or a merge of several instances' ones). */
export interface SeriesAggregate {
  readonly deviceId: string;
  readonly sensorType: string;
  count: number;
  sum: number;
  min: number;
  max: number;
}

/** A window that takes no more readings, with every series that had one (possibly none). */
export interface ClosedWindow {
  /** Unix ms, a multiple of the window length. */
  readonly windowStart: number;
  /** windowStart + the window length: readings at or after it belong to the next window. */
  readonly windowEnd: number;
  readonly series: SeriesAggregate[];
}

export type AddOutcome = 'ok' | 'TIMESTAMP_LATE' | 'TOO_MANY_SERIES';

/** Series of one window: by device, then by sensor (few per device), so the hot path builds no key strings. */
type WindowSeries = Map<string, Map<string, SeriesAggregate>>;

/** Adds one reading's value to a series. */
export function addValue(series: SeriesAggregate, value: number): void {
  series.count++;
  series.sum += value;
  if (value < series.min) series.min = value;
  if (value > series.max) series.max = value;
}

/** Adds another instance's partial aggregate of the same series and window. */
export function mergeSeries(into: SeriesAggregate, other: Pick<SeriesAggregate, 'count' | 'sum' | 'min' | 'max'>): void {
  into.count += other.count;
  into.sum += other.sum;
  if (other.min < into.min) into.min = other.min;
  if (other.max > into.max) into.max = other.max;
}

/** Most empty windows a late clock tick reports; a longer stall skips the rest (nothing was in them). */
const MAX_CATCH_UP_WINDOWS = 100;

/**
 * The open windows of one instance. A window [start, start + windowMs) closes once the clock
 * passes its end plus `latenessMs`; from then its readings are refused as late, so a closed
 * window is never reopened and never counted twice.
 */
export class WindowAggregator {
  private readonly windows = new Map<number, WindowSeries>();
  /** Start of the earliest window still open. */
  private openFrom: number;
  private series = 0;

  constructor(
    private readonly windowMs: number,
    private readonly latenessMs: number,
    private readonly maxSeries: number,
    now: number,
  ) {
    this.openFrom = this.startOf(now - latenessMs);
  }

  /** Device and sensor pairs held in the open windows. */
  get seriesCount(): number {
    return this.series;
  }

  startOf(timestamp: number): number {
    return Math.floor(timestamp / this.windowMs) * this.windowMs;
  }

  /** When the earliest open window closes (Unix ms). */
  get nextCloseAt(): number {
    return this.openFrom + this.windowMs + this.latenessMs;
  }

  add(reading: Reading): AddOutcome {
    const start = this.startOf(reading.timestamp);
    if (start < this.openFrom) return 'TIMESTAMP_LATE';
    let window = this.windows.get(start);
    if (!window) {
      window = new Map();
      this.windows.set(start, window);
    }
    let sensors = window.get(reading.deviceId);
    let series = sensors?.get(reading.sensorType);
    if (!series) {
      if (this.series >= this.maxSeries) return 'TOO_MANY_SERIES';
      if (!sensors) {
        sensors = new Map();
        window.set(reading.deviceId, sensors);
      }
      series = { deviceId: reading.deviceId, sensorType: reading.sensorType, count: 0, sum: 0, min: Infinity, max: -Infinity };
      sensors.set(reading.sensorType, series);
      this.series++;
    }
    addValue(series, reading.value);
    return 'ok';
  }

  /** Closes every window due at `now`, oldest first, empty ones included (instances report every window). */
  closeDue(now: number): ClosedWindow[] {
    const closed: ClosedWindow[] = [];
    if (this.nextCloseAt + MAX_CATCH_UP_WINDOWS * this.windowMs <= now) {
      // A long stall: keep the windows that hold readings, skip the empty stretch.
      const held = [...this.windows.keys()].sort((a, b) => a - b);
      for (const start of held) if (start + this.windowMs + this.latenessMs <= now) closed.push(this.take(start));
      this.openFrom = this.startOf(now - this.latenessMs);
      return closed;
    }
    while (this.nextCloseAt <= now) {
      closed.push(this.take(this.openFrom));
      this.openFrom += this.windowMs;
    }
    return closed;
  }

  private take(start: number): ClosedWindow {
    const window = this.windows.get(start);
    this.windows.delete(start);
    const series: SeriesAggregate[] = [];
    if (window) for (const sensors of window.values()) for (const s of sensors.values()) series.push(s);
    this.series -= series.length;
    return { windowStart: start, windowEnd: start + this.windowMs, series };
  }
}
