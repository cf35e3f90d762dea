import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { JsonText } from '../../core/json.js';
import { TelemetryStats } from './stats.js';
import type { ClosedWindow, SeriesAggregate } from './window_aggregator.js';
import { WindowMerger } from './window_merger.js';

function series(deviceId: string, count: number, sum: number, min: number, max: number): SeriesAggregate {
  return { deviceId, sensorType: 'temperature', count, sum, min, max };
}

/** Instances joined by a bus that delivers every message to every instance, in order. */
function cluster(ids: string[], published: ClosedWindow[], mergeWaitMs = 10_000) {
  const mergers = new Map<string, WindowMerger>();
  const stats = new TelemetryStats();
  for (const id of ids) {
    mergers.set(
      id,
      new WindowMerger({
        nodeId: id,
        liveNodes: () => ids,
        send: (data: JsonText) => {
          for (const m of mergers.values()) m.receive(data);
          return Promise.resolve();
        },
        publish: (window) => {
          published.push(window);
          return Promise.resolve();
        },
        windowMs: 1000,
        mergeWaitMs,
        stats,
        logger: pino({ level: 'silent' }),
      }),
    );
  }
  return { mergers, stats };
}

describe('WindowMerger', () => {
  it('publishes one merged window once every instance reported it', async () => {
    const published: ClosedWindow[] = [];
    const { mergers } = cluster(['n1', 'n2', 'n3'], published);
    await mergers.get('n2')?.report({ windowStart: 0, windowEnd: 1000, series: [series('a', 2, 10, 4, 6)] });
    await mergers.get('n3')?.report({ windowStart: 0, windowEnd: 1000, series: [] });
    expect(published).toEqual([]);
    await mergers.get('n1')?.report({ windowStart: 0, windowEnd: 1000, series: [series('a', 1, 1, 1, 1), series('b', 1, 5, 5, 5)] });
    expect(published).toEqual([{ windowStart: 0, windowEnd: 1000, series: [series('a', 3, 11, 1, 6), series('b', 1, 5, 5, 5)] }]);
    for (const m of mergers.values()) m.stop();
  });

  it('splits a large window into parts and waits for all of them', async () => {
    const published: ClosedWindow[] = [];
    const { mergers } = cluster(['n1', 'n2'], published);
    const many = Array.from({ length: 4500 }, (_, i) => series(`d${i}`, 1, i, i, i));
    await mergers.get('n2')?.report({ windowStart: 0, windowEnd: 1000, series: many });
    await mergers.get('n1')?.report({ windowStart: 0, windowEnd: 1000, series: many.slice(0, 10) });
    expect(published).toHaveLength(1);
    const merged = published[0]?.series ?? [];
    expect(merged).toHaveLength(4500);
    expect(merged.reduce((n, s) => n + s.count, 0)).toBe(4510);
    for (const m of mergers.values()) m.stop();
  });

  it('publishes without a silent instance after merge_wait, and counts its partial as late', async () => {
    const published: ClosedWindow[] = [];
    const { mergers, stats } = cluster(['n1', 'n2'], published, 50);
    await mergers.get('n1')?.report({ windowStart: 0, windowEnd: 1000, series: [series('a', 1, 1, 1, 1)] });
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(published.map((w) => w.series[0]?.count)).toEqual([1]);
    await mergers.get('n2')?.report({ windowStart: 0, windowEnd: 1000, series: [series('a', 1, 1, 1, 1)] });
    expect(published).toHaveLength(1);
    expect(stats.latePartials).toBe(1);
    for (const m of mergers.values()) m.stop();
  });
});
