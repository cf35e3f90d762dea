import { afterAll, describe, expect, it } from 'vitest';
import { killAll } from './children.js';
import { Histogram, summarize } from './metrics.js';
import { runStepped } from './scenarios/stepped.js';
import type { TargetName } from './targets/target.js';

const ROOMS = 2;
const SUBSCRIBERS_PER_ROOM = 5;

function smoke(target: TargetName): ReturnType<typeof runStepped> {
  return runStepped(
    {
      id: 'a',
      title: 'harness smoke',
      targets: [target],
      rooms: ROOMS,
      subscribersPerRoom: SUBSCRIBERS_PER_ROOM,
      rates: [20, 40],
      warmupMs: 200,
      measureMs: 1000,
      // Count every step, whatever its latency: this test never judges timings.
      maxFailures: 99,
      clientProcesses: 2,
      padBytes: 52,
      drainMs: 5000,
      targetOptions: { historySize: 100, redisUrl: 'redis://127.0.0.1:6379' },
    },
    () => undefined,
  );
}

describe('bench harness', () => {
  afterAll(() => killAll());

  it('counts every delivery of every step, on ws and socketio', async () => {
    const results = await Promise.all([smoke('ws'), smoke('socketio')]);
    for (const result of results) {
      for (const target of result.targets) {
        expect(target.error).toBeNull();
        expect(target.steps).toHaveLength(2);
        for (const step of target.steps) {
          expect(step.sent).toBeGreaterThan(0);
          expect(step.expected).toBe(step.sent * SUBSCRIBERS_PER_ROOM);
          expect(step.received).toBe(step.expected);
          expect(step.loss).toBe(0);
          expect(step.duplicates).toBe(0);
          expect(step.gaps).toBe(0);
          expect(step.closed).toBe(0);
          expect(step.latencyMs.p99).not.toBeNull();
        }
      }
    }
  }, 30_000);

  it('reads quantiles from the histogram within its precision', () => {
    const h = new Histogram();
    for (let i = 1; i <= 1000; i++) h.recordMs(i);
    const s = summarize(h);
    expect(s.p50).toBeGreaterThan(500 * 0.96);
    expect(s.p50).toBeLessThan(500 * 1.04);
    expect(s.p99).toBeGreaterThan(990 * 0.96);
    expect(s.max).toBe(1000);
  });
});
