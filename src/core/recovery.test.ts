import { describe, expect, it } from 'vitest';
import type { JsonText } from './json.js';
import type { Publication } from './publication.js';
import { mergeRecovery } from './recovery.js';

const pub = (offset: number, epoch = 'e1'): Publication => ({ offset, epoch, data: `${offset}` as JsonText, time: 0 });
const range = (from: number, to: number, epoch = 'e1'): Publication[] => Array.from({ length: to - from + 1 }, (_, i) => pub(from + i, epoch));
const offsets = (pubs: readonly Publication[]): number[] => pubs.map((p) => p.offset);

describe('mergeRecovery', () => {
  it('recovers every missed publication when history covers the position', () => {
    const out = mergeRecovery({
      recover: true,
      since: { offset: 3, epoch: 'e1' },
      maxPublications: 100,
      history: { publications: range(4, 8), position: { offset: 8, epoch: 'e1' } },
      buffered: [],
    });
    expect(out).toMatchObject({ ok: true, recovered: true, position: { offset: 8, epoch: 'e1' } });
    expect(out.ok && offsets(out.publications)).toEqual([4, 5, 6, 7, 8]);
  });

  it('recovers with nothing to replay when the position is the top', () => {
    const out = mergeRecovery({
      recover: true,
      since: { offset: 8, epoch: 'e1' },
      maxPublications: 100,
      history: { publications: [], position: { offset: 8, epoch: 'e1' } },
      buffered: [],
    });
    expect(out).toMatchObject({ ok: true, recovered: true, publications: [] });
  });

  it('replays nothing (no partial replay) when history starts after the position', () => {
    const out = mergeRecovery({
      recover: true,
      since: { offset: 3, epoch: 'e1' },
      maxPublications: 100,
      history: { publications: range(6, 8), position: { offset: 8, epoch: 'e1' } },
      buffered: [],
    });
    expect(out).toMatchObject({ ok: true, recovered: false, publications: [], position: { offset: 8 } });
  });

  it('fails recovery on another epoch, or beyond the replay limit', () => {
    const otherEpoch = mergeRecovery({
      recover: true,
      since: { offset: 3, epoch: 'old' },
      maxPublications: 100,
      history: { publications: [], position: { offset: 8, epoch: 'e1' } },
      buffered: [],
    });
    expect(otherEpoch).toMatchObject({ ok: true, recovered: false, publications: [] });
    const tooMany = mergeRecovery({
      recover: true,
      since: { offset: 0, epoch: 'e1' },
      maxPublications: 5,
      history: { publications: range(1, 6), position: { offset: 8, epoch: 'e1' } },
      buffered: [],
    });
    expect(tooMany).toMatchObject({ ok: true, recovered: false, publications: [] });
  });

  it('accepts an empty epoch as any epoch', () => {
    const out = mergeRecovery({
      recover: true,
      since: { offset: 1, epoch: '' },
      maxPublications: 100,
      history: { publications: range(2, 3), position: { offset: 3, epoch: 'e1' } },
      buffered: [],
    });
    expect(out).toMatchObject({ ok: true, recovered: true });
  });

  it('appends what arrived during the history read, skipping what history already had', () => {
    const out = mergeRecovery({
      recover: true,
      since: { offset: 3, epoch: 'e1' },
      maxPublications: 100,
      history: { publications: range(4, 6), position: { offset: 6, epoch: 'e1' } },
      buffered: [pub(5), pub(6), pub(7), pub(8)],
    });
    expect(out.ok && offsets(out.publications)).toEqual([4, 5, 6, 7, 8]);
    expect(out).toMatchObject({ position: { offset: 8 } });
  });

  it('delivers buffered publications after the top even without recovery', () => {
    const out = mergeRecovery({
      recover: false,
      maxPublications: 100,
      history: { publications: [], position: { offset: 6, epoch: 'e1' } },
      buffered: [pub(6), pub(7)],
    });
    expect(out).toMatchObject({ ok: true, recovered: false, position: { offset: 7 } });
    expect(out.ok && offsets(out.publications)).toEqual([7]);
  });

  it('refuses to join when the live stream and history do not meet', () => {
    const gap = mergeRecovery({
      recover: false,
      maxPublications: 100,
      history: { publications: [], position: { offset: 6, epoch: 'e1' } },
      buffered: [pub(8)],
    });
    expect(gap.ok).toBe(false);
    const epochChange = mergeRecovery({
      recover: false,
      maxPublications: 100,
      history: { publications: [], position: { offset: 6, epoch: 'e1' } },
      buffered: [pub(1, 'e2')],
    });
    expect(epochChange.ok).toBe(false);
  });
});
