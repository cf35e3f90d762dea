import { describe, expect, it } from 'vitest';
import type { JsonText } from './json.js';
import { mergeLatest } from './latest.js';
import type { Publication } from './publication.js';

const pub = (offset: number, epoch = 'e1'): Publication => ({ offset, epoch, data: `${offset}` as JsonText, time: 0 });
/** History read newest first, as joinLatest reads it. */
const newest = (from: number, to: number, epoch = 'e1'): Publication[] => Array.from({ length: to - from + 1 }, (_, i) => pub(to - i, epoch));
const offsets = (pubs: readonly Publication[]): number[] => pubs.map((p) => p.offset);
const top = (offset: number, epoch = 'e1') => ({ offset, epoch });

describe('mergeLatest (cache recovery mode)', () => {
  it('hands a new subscriber the latest publication only, then what arrived during the read', () => {
    const out = mergeLatest({ resume: false, history: { publications: newest(1, 5), position: top(5) }, buffered: [pub(5), pub(6), pub(7)] });
    expect(out).toMatchObject({ ok: true, recovered: false, position: top(7) });
    expect(out.ok && offsets(out.publications)).toEqual([5, 6, 7]);
  });

  it('recovers a WebSocket client with the latest only, as Centrifugo does, even when history holds more', () => {
    const out = mergeLatest({ since: top(2), resume: false, history: { publications: newest(1, 5), position: top(5) }, buffered: [] });
    expect(out).toMatchObject({ ok: true, recovered: true });
    expect(out.ok && offsets(out.publications)).toEqual([5]);
  });

  it('recovers a client that knew no position (`since: {}`) with the latest', () => {
    const out = mergeLatest({ since: top(0, ''), resume: false, history: { publications: newest(5, 5), position: top(5) }, buffered: [] });
    expect(out).toMatchObject({ ok: true, recovered: true });
    expect(out.ok && offsets(out.publications)).toEqual([5]);
  });

  it('is not recovered when the channel has no latest (expired or never published), and hands nothing', () => {
    const out = mergeLatest({ since: top(3), resume: false, history: { publications: [], position: top(3) }, buffered: [] });
    expect(out).toMatchObject({ ok: true, recovered: false, publications: [] });
  });

  it('is not recovered across an epoch change, but still hands the new latest', () => {
    const out = mergeLatest({ since: top(9, 'old'), resume: true, history: { publications: newest(1, 2, 'e2'), position: top(2, 'e2') }, buffered: [] });
    expect(out).toMatchObject({ ok: true, recovered: false });
    expect(out.ok && offsets(out.publications)).toEqual([2]);
  });

  it('replays everything a resume missed when history holds it all (SSE: nothing lost, nothing repeated)', () => {
    const out = mergeLatest({ since: top(2), resume: true, history: { publications: newest(1, 5), position: top(5) }, buffered: [pub(6)] });
    expect(out).toMatchObject({ ok: true, recovered: true, position: top(6) });
    expect(out.ok && offsets(out.publications)).toEqual([3, 4, 5, 6]);
  });

  it('resumes at the top with nothing to replay', () => {
    const out = mergeLatest({ since: top(5), resume: true, history: { publications: newest(1, 5), position: top(5) }, buffered: [] });
    expect(out).toMatchObject({ ok: true, recovered: true, publications: [] });
  });

  it('falls back to the latest when history no longer holds all a resume missed', () => {
    const out = mergeLatest({ since: top(1), resume: true, history: { publications: newest(4, 5), position: top(5) }, buffered: [] });
    expect(out).toMatchObject({ ok: true, recovered: true });
    expect(out.ok && offsets(out.publications)).toEqual([5]);
  });

  it('fails (subscribe retried) on a gap between history and the live stream', () => {
    const out = mergeLatest({ resume: false, history: { publications: newest(1, 5), position: top(5) }, buffered: [pub(7)] });
    expect(out.ok).toBe(false);
  });
});
