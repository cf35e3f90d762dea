import { describe, expect, it } from 'vitest';
import { RelaisError } from '../core/errors.js';
import { GroupCommit, type PendingCall } from './group_commit.js';

/** A commit function whose batches the test releases by hand. */
class ManualCommit {
  readonly batches: { calls: readonly PendingCall<number, number>[]; committing: () => void; finish: (fail?: Error) => void }[] = [];

  readonly fn = (calls: readonly PendingCall<number, number>[], committing: () => void): Promise<readonly (readonly number[])[]> =>
    new Promise((resolve, reject) => {
      this.batches.push({
        calls,
        committing,
        finish: (fail) => (fail ? reject(fail) : resolve(calls.map((c) => c.requests.map((r) => r * 10)))),
      });
    });
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('GroupCommit', () => {
  it('gathers the calls of one turn into one batch, bounded, never splitting a call', async () => {
    const manual = new ManualCommit();
    const group = new GroupCommit(manual.fn, { maxBatch: 4, maxQueued: 100 });
    const results = [group.submit([1, 2]), group.submit([3]), group.submit([4, 5]), group.submit([6, 7, 8, 9, 10, 11])];
    await turn();
    expect(manual.batches.map((b) => b.calls.map((c) => c.requests))).toEqual([[[1, 2], [3]]]);
    manual.batches[0]?.finish();
    await turn();
    await turn();
    expect(manual.batches[1]?.calls.map((c) => c.requests)).toEqual([[4, 5]]);
    manual.batches[1]?.finish();
    await turn();
    await turn();
    expect(manual.batches[2]?.calls.map((c) => c.requests)).toEqual([[6, 7, 8, 9, 10, 11]]);
    manual.batches[2]?.finish();
    expect(await Promise.all(results)).toEqual([[10, 20], [30], [40, 50], [60, 70, 80, 90, 100, 110]]);
  });

  it('starts the next batch only once the one in flight is committing, with two in flight', async () => {
    const manual = new ManualCommit();
    const group = new GroupCommit(manual.fn, { maxBatch: 10, maxQueued: 100, maxInFlight: 2 });
    const a = group.submit([1]);
    await turn();
    const b = group.submit([2]);
    await turn();
    expect(manual.batches).toHaveLength(1);
    manual.batches[0]?.committing();
    await turn();
    expect(manual.batches).toHaveLength(2);
    const c = group.submit([3]);
    manual.batches[1]?.committing();
    await turn();
    // Two in flight already: the third waits for one of them to end.
    expect(manual.batches).toHaveLength(2);
    manual.batches[0]?.finish();
    await a;
    await turn();
    await turn();
    expect(manual.batches).toHaveLength(3);
    manual.batches[1]?.finish();
    manual.batches[2]?.finish();
    expect(await Promise.all([b, c])).toEqual([[20], [30]]);
  });

  it('rejects every call of a failed batch and only those', async () => {
    const manual = new ManualCommit();
    const group = new GroupCommit(manual.fn, { maxBatch: 10, maxQueued: 100 });
    const first = [group.submit([1]), group.submit([2])].map((p) => p.catch((e: unknown) => e));
    await turn();
    const later = group.submit([3]);
    manual.batches[0]?.finish(new RelaisError('STORE_UNAVAILABLE'));
    await turn();
    await turn();
    manual.batches[1]?.finish();
    const outcomes = await Promise.all(first);
    expect(outcomes.every((o) => o instanceof RelaisError && o.code === 'STORE_UNAVAILABLE')).toBe(true);
    expect(await later).toEqual([30]);
  });

  it('refuses at once beyond the queue bound, and rejects what is queued on close', async () => {
    const manual = new ManualCommit();
    const group = new GroupCommit(manual.fn, { maxBatch: 2, maxQueued: 3 });
    const inFlight = group.submit([1, 2]);
    await turn();
    const queued = group.submit([3, 4, 5]).catch((e: unknown) => e);
    const refused = await group.submit([6]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RelaisError);
    expect((refused as RelaisError).message).toMatch(/overloaded/);
    expect(group.pending).toBe(3);
    const closing = group.close();
    manual.batches[0]?.finish();
    await closing;
    expect(await inFlight).toEqual([10, 20]);
    expect((await queued) as RelaisError).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(await group.submit([7]).catch((e: unknown) => (e as RelaisError).code)).toBe('STORE_UNAVAILABLE');
  });
});
