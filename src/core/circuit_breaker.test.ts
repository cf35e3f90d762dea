import { describe, expect, it, vi } from 'vitest';
import { CircuitBreaker, type CircuitState } from './circuit_breaker.js';
import { RelaisError } from './errors.js';

const fail = (): Promise<never> => Promise.reject(new Error('bus down'));
const ok = (): Promise<string> => Promise.resolve('ok');

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return err instanceof RelaisError ? err.code : 'bus';
  }
}

describe('CircuitBreaker', () => {
  it('opens after the threshold, refuses at once while open, probes once, closes on success', async () => {
    vi.useFakeTimers();
    try {
      const states: CircuitState[] = [];
      const breaker = new CircuitBreaker({ failureThreshold: 3, openMs: 30_000, onStateChange: (s) => states.push(s) });
      for (let i = 0; i < 3; i++) expect(await outcome(breaker.run(fail))).toBe('bus');
      expect(breaker.current).toBe('open');
      const op = vi.fn(ok);
      expect(await outcome(breaker.run(op))).toBe('BROKER_UNAVAILABLE');
      expect(op).not.toHaveBeenCalled();
      vi.advanceTimersByTime(30_001);
      // Its time is up: it reads half-open before any call (readiness sees it at once).
      expect(breaker.current).toBe('half-open');
      let release: () => void = () => undefined;
      const probe = breaker.run(() => new Promise<string>((resolve) => (release = () => resolve('ok'))));
      expect(await outcome(breaker.run(ok))).toBe('BROKER_UNAVAILABLE');
      release();
      expect(await probe).toBe('ok');
      expect(breaker.current).toBe('closed');
      expect(states).toEqual(['open', 'half-open', 'closed']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('reopens when the probe fails, and a success resets the count', async () => {
    vi.useFakeTimers();
    try {
      const breaker = new CircuitBreaker({ failureThreshold: 2, openMs: 1000 });
      await outcome(breaker.run(fail));
      await outcome(breaker.run(ok));
      await outcome(breaker.run(fail));
      expect(breaker.current).toBe('closed');
      await outcome(breaker.run(fail));
      expect(breaker.current).toBe('open');
      vi.advanceTimersByTime(1001);
      expect(await outcome(breaker.run(fail))).toBe('bus');
      expect(breaker.current).toBe('open');
    } finally {
      vi.useRealTimers();
    }
  });
});
