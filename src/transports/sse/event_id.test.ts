import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { StreamPosition } from '../../core/publication.js';
import { decodeEventId, encodeEventId, MAX_EVENT_ID_LENGTH } from './event_id.js';

function positions(...entries: [string, string, number][]): Map<string, StreamPosition> {
  return new Map(entries.map(([channel, epoch, offset]) => [channel, { epoch, offset }]));
}

describe('SSE event id', () => {
  it('round-trips the time and the position of every channel, in order', () => {
    const map = positions(['chat:a', 'dFk3-Qs2', 1], ['chat:b', 'x_Y-z9', 42], ['news', 'e', 9_007_199_254_740_991]);
    const id = encodeEventId(1_700_000_000_123, map);
    expect(id).toBe('1;1700000000123;chat%3Aa=dFk3-Qs2.1,chat%3Ab=x_Y-z9.42,news=e.9007199254740991');
    const cursor = decodeEventId(id);
    expect(cursor?.time).toBe(1_700_000_000_123);
    expect([...(cursor?.positions ?? [])]).toEqual([...map]);
  });

  it('encodes a stream with no position yet as time only', () => {
    expect(encodeEventId(5, new Map())).toBe('1;5;');
    const cursor = decodeEventId('1;5;');
    expect(cursor?.time).toBe(5);
    expect(cursor?.positions.size).toBe(0);
  });

  it('percent-encodes channel names and epochs that hold the separators', () => {
    // Every character channel names allow, the id's own separators among them (= , . :), and more.
    const odd = ['ns:a,b', 'ns:k=v', 'ns:a.b.c', 'ns:#tag+1~/x@y', 'a;b', 'sp ace', 'pct%41', 'café:ü', 'line\nbreak', 'nul\u0000'];
    const map = new Map<string, StreamPosition>(odd.map((channel, i) => [channel, { epoch: `ep.${i}=,;%`, offset: i + 1 }]));
    const id = encodeEventId(1, map);
    // An SSE id field ends at a line break and is ignored whole when it holds NUL.
    expect([id.includes('\n'), id.includes('\r'), id.includes('\u0000')]).toEqual([false, false, false]);
    const [version, time, list, ...rest] = id.split(';');
    expect([version, time, rest]).toEqual(['1', '1', []]);
    expect(list?.split(',')).toHaveLength(odd.length);
    expect([...(decodeEventId(id)?.positions ?? [])]).toEqual([...map]);
  });

  it('round-trips any channel names, epochs and offsets', () => {
    const entry = fc.tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 }), fc.string({ unit: 'grapheme', maxLength: 16 }), fc.nat());
    fc.assert(
      fc.property(fc.nat({ max: 4_102_444_800_000 }), fc.uniqueArray(entry, { selector: ([channel]) => channel, maxLength: 8 }), (time, entries) => {
        const map = positions(...entries);
        const cursor = decodeEventId(encodeEventId(time, map));
        expect(cursor?.time).toBe(time);
        expect([...(cursor?.positions ?? [])]).toEqual([...map]);
      }),
    );
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['not ours', 'garbage'],
    ['another version', '2;1;a=e.1'],
    ['no position list', '1;1'],
    ['a time that is not a number', '1;soon;a=e.1'],
    ['a negative time', '1;-5;a=e.1'],
    ['a fractional time', '1;1.5;a=e.1'],
    ['an extra field', '1;1;a=e.1;x'],
    ['an entry without "="', '1;1;a'],
    ['an entry without offset', '1;1;a=e'],
    ['an offset that is not a number', '1;1;a=e.x'],
    ['a negative offset', '1;1;a=e.-1'],
    ['an offset past 2^53', '1;1;a=e.9007199254740993'],
    ['an empty channel', '1;1;=e.1'],
    ['an empty entry', '1;1;a=e.1,,b=e.2'],
    ['broken percent-encoding', '1;1;%E0%A4%A=e.1'],
    ['broken percent-encoding in the epoch', '1;1;a=%ZZ.1'],
    ['a time past 2^53', '1;99999999999999999;a=e.1'],
  ])('starts fresh on an id with %s', (_what, id) => {
    expect(decodeEventId(id)).toBeUndefined();
  });

  it('starts fresh on an id longer than the limit, and reads one just within it', () => {
    const name = (length: number): string => 'a'.repeat(length - '1;1;=e.1'.length);
    const within = `1;1;${name(MAX_EVENT_ID_LENGTH)}=e.1`;
    expect(within).toHaveLength(MAX_EVENT_ID_LENGTH);
    expect(decodeEventId(within)?.positions.get(name(MAX_EVENT_ID_LENGTH))).toEqual({ epoch: 'e', offset: 1 });
    expect(decodeEventId(`1;1;${name(MAX_EVENT_ID_LENGTH + 1)}=e.1`)).toBeUndefined();
  });
});
