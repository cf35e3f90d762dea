/** The aggregate of one device and sensor over one closed window, as dashboards receive it. */
import type { SeriesAggregate } from './window_aggregator.js';

export interface WindowAggregate {
  readonly deviceId: string;
  readonly sensorType: string;
  /** sum / count, unrounded. */
  readonly avg: number;
  readonly min: number;
  readonly max: number;
  readonly count: number;
  /** Unix ms; the window is [windowStart, windowEnd). */
  readonly windowStart: number;
  readonly windowEnd: number;
}

/** The JSON text of one aggregate, written once and embedded in every event that carries it. */
export function encodeAggregate(series: SeriesAggregate, windowStart: number, windowEnd: number): string {
  const aggregate: WindowAggregate = {
    deviceId: series.deviceId,
    sensorType: series.sensorType,
    avg: series.sum / series.count,
    min: series.min,
    max: series.max,
    count: series.count,
    windowStart,
    windowEnd,
  };
  return JSON.stringify(aggregate);
}
