/**
 * The conformance suite every OccupancyCounter runs: local, Redis (single, Cluster), NATS,
 * the workers' IPC. A setup gives counters of new nodes sharing one isolated namespace.
 * Random schedules come from a seed printed with the test (RELAIS_OCCUPANCY_SEED replays it).
 */
import { randomInt } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { OccupancyCounter, OccupancyTransition } from './occupancy.js';
import { seeded } from '../../test/helpers/seeded.js';

export interface NodeUnderTest {
  readonly counter: OccupancyCounter;
  /** Stops the node as a crash would: nothing cleared, its liveness left to lapse. */
  crash(): Promise<void>;
}

export interface OccupancyContractSetup {
  /** A new node of the current namespace, alive for `livenessMs` after each sweep. */
  node(livenessMs: number): Promise<NodeUnderTest>;
  /** Ends the current namespace (its nodes are closed) and starts a fresh one. */
  reset(): Promise<void>;
  /** Whether counters from `node()` share their state (false for the one-process counter). */
  readonly distributed: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function describeOccupancyContract(name: string, setup: OccupancyContractSetup): void {
  describe(`OccupancyCounter contract: ${name}`, () => {
    // A one-process counter has no other node: the cross-node cases are not defined for it (not skipped).
    const distributedIt = setup.distributed ? it : (): void => undefined;
    const open: NodeUnderTest[] = [];
    const node = async (livenessMs = 10_000): Promise<OccupancyCounter> => {
      const n = await setup.node(livenessMs);
      open.push(n);
      return n.counter;
    };
    afterEach(async () => {
      await Promise.allSettled(open.splice(0).map((n) => n.counter.close()));
      await setup.reset();
    });

    it('reports occupied on the first set, vacated on the last clear, nothing for a repeat', async () => {
      const a = await node();
      expect(await a.set('room', true)).toBe('occupied');
      expect(await a.set('room', true)).toBeUndefined();
      expect(await a.set('other', true)).toBe('occupied');
      expect(await a.set('room', false)).toBe('vacated');
      expect(await a.set('room', false)).toBeUndefined();
      expect(await a.set('other', false)).toBe('vacated');
      expect(await a.sweep()).toEqual([]);
    });

    distributedIt('across nodes: the first in makes occupied, the last out vacated, channels apart', async () => {
      const [a, b] = [await node(), await node()];
      expect(await a.set('room', true)).toBe('occupied');
      expect(await b.set('room', true)).toBeUndefined();
      expect(await b.set('hall:1.x', true)).toBe('occupied');
      expect(await a.set('room', false)).toBeUndefined();
      expect(await b.set('room', false)).toBe('vacated');
      expect(await b.set('hall:1.x', false)).toBe('vacated');
    });

    const seed = Number(process.env['RELAIS_OCCUPANCY_SEED'] ?? randomInt(1, 2 ** 31));
    distributedIt(`3 nodes toggling one channel at once, 50 rounds (seed ${seed}): the transitions alternate and match the state`, async () => {
      const random = seeded(seed);
      const nodes = [await node(), await node(), await node()];
      const holds = [false, false, false];
      const channel = 'contended';
      const seen: OccupancyTransition[] = [];
      for (let round = 0; round < 50; round++) {
        const before = holds.some(Boolean) ? 1 : 0;
        const moves = nodes.map((counter, i) => {
          if (random() < 0.3) return Promise.resolve(undefined);
          holds[i] = !holds[i];
          return counter.set(channel, holds[i] === true);
        });
        const results = (await Promise.all(moves)).filter((t): t is OccupancyTransition => t !== undefined);
        const after = holds.some(Boolean) ? 1 : 0;
        const occupied = results.filter((t) => t === 'occupied').length;
        const vacated = results.length - occupied;
        // Alternating from `before`, a round's transitions differ by at most one and end in `after`.
        expect(occupied - vacated, `seed ${seed}, round ${round}: ${results.join(',')} from ${before} to ${after}`).toBe(after - before);
        seen.push(...results);
      }
      const final = holds.some(Boolean) ? 1 : 0;
      expect(seen.filter((t) => t === 'occupied').length - seen.filter((t) => t === 'vacated').length, `seed ${seed}`).toBe(final);
      // Leaving everything ends with exactly one vacated, if it was occupied.
      const last = (await Promise.all(nodes.map((counter, i) => (holds[i] ? counter.set(channel, false) : Promise.resolve(undefined))))).filter(Boolean);
      expect(last, `seed ${seed}`).toEqual(final ? ['vacated'] : []);
      expect(seen.length, `seed ${seed}: the schedule made transitions`).toBeGreaterThan(0);
    });

    distributedIt("a crashed node's channels are vacated once across two sweepers, once its liveness lapses", async () => {
      const livenessMs = 1500;
      const dying = await setup.node(livenessMs);
      open.push(dying);
      const [b, c] = [await node(livenessMs), await node(livenessMs)];
      // Several orphans: each is one more chance for two sweepers to race on it.
      const orphans = ['orphan:1', 'orphan:2', 'orphan:3', 'orphan:4', 'orphan:5'];
      for (const channel of orphans) expect(await dying.counter.set(channel, true)).toBe('occupied');
      expect(await dying.counter.set('shared', true)).toBe('occupied');
      expect(await b.set('shared', true)).toBeUndefined();
      expect([...(await b.sweep()), ...(await c.sweep())]).toEqual([]);
      await dying.crash();
      const reported: string[] = [];
      const deadline = Date.now() + 15_000;
      while (!orphans.every((o) => reported.includes(o)) && Date.now() < deadline) {
        const [fromB, fromC] = await Promise.all([b.sweep(), c.sweep()]);
        reported.push(...fromB, ...fromC);
        await sleep(150);
      }
      // A second sweeper that lagged behind would report it now.
      for (let i = 0; i < 3; i++) {
        const [fromB, fromC] = await Promise.all([b.sweep(), c.sweep()]);
        reported.push(...fromB, ...fromC);
      }
      expect(reported.sort()).toEqual(orphans);
      expect(await b.set('shared', false)).toBe('vacated');
      expect(await c.set('orphan:1', true)).toBe('occupied');
    });
  });
}
