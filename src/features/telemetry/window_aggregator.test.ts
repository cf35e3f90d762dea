import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WindowAggregator } from './window_aggregator.js';

const W = 1000;
const LATE = 200;

function reading(deviceId: string, value: number, timestamp: number, sensorType = 'temperature') {
  return { deviceId, sensorType, value, timestamp };
}

describe('WindowAggregator', () => {
  it('aggregates count, sum, min and max per device and sensor in tumbling windows', () => {
    // At 10 200 the window of 9 000 has just closed: 10 000 is the earliest open one.
    const windows = new WindowAggregator(W, LATE, 100, 10_200);
    expect(windows.add(reading('a', 3, 10_100))).toBe('ok');
    expect(windows.add(reading('a', -1, 10_900))).toBe('ok');
    expect(windows.add(reading('a', 7, 10_500, 'pressure'))).toBe('ok');
    expect(windows.add(reading('b', 2, 11_000))).toBe('ok');
    expect(windows.closeDue(11_199)).toEqual([]);
    const [first, ...rest] = windows.closeDue(11_200);
    expect(rest).toEqual([]);
    expect(first).toMatchObject({ windowStart: 10_000, windowEnd: 11_000 });
    expect(first?.series).toEqual([
      { deviceId: 'a', sensorType: 'temperature', count: 2, sum: 2, min: -1, max: 3 },
      { deviceId: 'a', sensorType: 'pressure', count: 1, sum: 7, min: 7, max: 7 },
    ]);
    expect(windows.seriesCount).toBe(1);
  });

  it('refuses readings for a closed window and never reopens it', () => {
    const windows = new WindowAggregator(W, LATE, 100, 10_000);
    windows.closeDue(11_200);
    expect(windows.add(reading('a', 1, 10_999))).toBe('TIMESTAMP_LATE');
    expect(windows.add(reading('a', 1, 11_000))).toBe('ok');
    expect(windows.closeDue(12_200).map((w) => w.windowStart)).toEqual([11_000]);
  });

  it('takes late readings while the window is within its lateness', () => {
    const windows = new WindowAggregator(W, LATE, 100, 11_150);
    expect(windows.add(reading('a', 1, 10_999))).toBe('ok');
    expect(windows.closeDue(11_200)[0]?.series[0]?.count).toBe(1);
  });

  it('reports empty windows, and refuses a new series past max_series', () => {
    const windows = new WindowAggregator(W, LATE, 2, 10_200);
    expect(windows.add(reading('a', 1, 10_000))).toBe('ok');
    expect(windows.add(reading('b', 1, 10_000))).toBe('ok');
    expect(windows.add(reading('c', 1, 10_000))).toBe('TOO_MANY_SERIES');
    expect(windows.add(reading('a', 5, 10_001))).toBe('ok');
    expect(windows.closeDue(13_200).map((w) => [w.windowStart, w.series.length])).toEqual([
      [10_000, 2],
      [11_000, 0],
      [12_000, 0],
    ]);
    expect(windows.add(reading('c', 1, 13_000))).toBe('ok');
  });

  it('equals a reference computed from the raw values, for any readings', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ device: fc.constantFrom('a', 'b', 'c'), value: fc.double({ min: -1e6, max: 1e6, noNaN: true }), at: fc.integer({ min: 0, max: 4999 }) }), {
          maxLength: 200,
        }),
        (items) => {
          const windows = new WindowAggregator(W, LATE, 1000, 0);
          for (const item of items) expect(windows.add(reading(item.device, item.value, item.at))).toBe('ok');
          const closed = windows.closeDue(10_000);
          for (const window of closed) {
            for (const series of window.series) {
              const values = items.filter((i) => i.device === series.deviceId && i.at >= window.windowStart && i.at < window.windowEnd).map((i) => i.value);
              expect(series.count).toBe(values.length);
              expect(series.min).toBe(values.reduce((m, v) => (v < m ? v : m), Infinity));
              expect(series.max).toBe(values.reduce((m, v) => (v > m ? v : m), -Infinity));
              expect(series.sum).toBeCloseTo(values.reduce((s, v) => s + v, 0), 3);
            }
          }
          expect(closed.reduce((n, w) => n + w.series.reduce((m, s) => m + s.count, 0), 0)).toBe(items.length);
        },
      ),
    );
  });
});
