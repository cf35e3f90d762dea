/**
 * Scaffolding of the multi-instance tests (test/cluster.test.ts): resources released after
 * each test whatever its outcome, polling with deadlines, readiness probes, SSE deliveries
 * as checkable sequences, and the figures printed in the test output.
 */
import { expect } from 'vitest';
import type { BusKind } from './buses.js';
import { sleep } from './clients.js';
import { totals, type Delivery, type DeliveryCheck } from './ledger.js';
import type { RelaisProcess } from './relais.js';
import type { SsePublication } from './sse.js';

/** Processes and other resources of the running test, released after it whatever its outcome. */
export class Resources {
  readonly processes: RelaisProcess[] = [];
  private readonly releasers: (() => unknown)[] = [];

  on<T>(resource: T, release: (resource: T) => unknown): T {
    this.releasers.push(() => release(resource));
    return resource;
  }

  /** Kills the Relais processes first (before the buses they use), then releases the rest, last registered first. */
  async release(): Promise<void> {
    await Promise.all(this.processes.splice(0).map((p) => p.kill9().catch(() => undefined)));
    for (const release of this.releasers.splice(0).reverse()) {
      try {
        await release();
      } catch {
        // Already gone.
      }
    }
  }
}

/** An SSE stream's publications as a sequence to check. */
export function sseDelivery(name: string, pubs: readonly SsePublication[]): Delivery & { epochs: string[] } {
  return {
    name,
    offsets: pubs.map((p) => p.offset ?? 0),
    epochs: pubs.map((p) => p.epoch ?? ''),
    values: pubs.map((p) => {
      const n = (p.data as { n?: unknown } | undefined)?.n;
      return typeof n === 'number' ? n : Number.NaN;
    }),
  };
}

/** Fails with the first problems found when any subscriber got a duplicate, a gap, a reordering or wrong data. */
export function expectClean(label: string, checks: readonly DeliveryCheck[]): void {
  const problems = checks.map((c) => c.firstProblem).filter((p): p is string => p !== undefined);
  expect(problems, `${label}: ${problems.slice(0, 5).join('; ')}`).toEqual([]);
  const sum = totals(checks);
  expect({ duplicated: sum.duplicated, lost: sum.lost, outOfOrder: sum.outOfOrder, wrongData: sum.wrongData }).toEqual({
    duplicated: 0,
    lost: 0,
    outOfOrder: 0,
    wrongData: 0,
  });
}

/**
 * Polls a condition every 50 ms until it holds (a check that throws counts as not yet);
 * rejects after `timeoutMs`, saying what was awaited and, when `what` is a function, the
 * state at that moment.
 */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const holds = async (): Promise<boolean> => {
    try {
      return await check();
    } catch {
      return false;
    }
  };
  while (!(await holds())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
    await sleep(50);
  }
}

/** The status of `/readyz`; 0 when the instance does not answer. */
export async function readyz(node: { httpUrl: string }): Promise<number> {
  try {
    const response = await fetch(`${node.httpUrl}/readyz`, { signal: AbortSignal.timeout(5000) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}

/** One line of figures in the test output: `[<where>] <test>: key=value ...`, where is `cluster <bus>` for a bus. */
export function report(where: BusKind | `${string} ${string}`, test: string, figures: Record<string, unknown>): void {
  const shown = Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'string' || typeof v === 'number' ? String(v) : JSON.stringify(v)}`);
  const label = where === 'redis' || where === 'nats' ? `cluster ${where}` : where;
  console.log(`[${label}] ${test}: ${shown.join(' ')}`);
}
