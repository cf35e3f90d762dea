import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RawJson, decodeLine, encodePublicationPush, jsonCodec, splitFrame, toWireJson } from './json_codec.js';

describe('decodeLine', () => {
  it('decodes each command with its fields', () => {
    expect(decodeLine('{"id":1,"connect":{"token":"t","name":"js"}}')).toEqual({
      kind: 'command',
      command: { id: 1, method: 'connect', request: { token: 't', name: 'js' } },
    });
    expect(decodeLine('{"id":2,"subscribe":{"channel":"chat:a","recover":true,"offset":"12","epoch":"e","flag":3}}')).toEqual({
      kind: 'command',
      command: { id: 2, method: 'subscribe', request: { channel: 'chat:a', recover: true, offset: 12, epoch: 'e', flag: 3 } },
    });
    expect(decodeLine('{"id":3,"history":{"channel":"c","limit":5,"since":{"offset":1,"epoch":"e"},"reverse":true}}')).toMatchObject({
      kind: 'command',
      command: { method: 'history', request: { channel: 'c', limit: 5, since: { offset: 1, epoch: 'e' }, reverse: true } },
    });
    expect(decodeLine('{"send":{"data":{"x":1}}}')).toMatchObject({ kind: 'command', command: { id: 0, method: 'send' } });
  });

  it('reads {} as the pong to a server ping', () => {
    expect(decodeLine('{}')).toEqual({ kind: 'command', command: { id: 0, method: 'pong', request: {} } });
  });

  it('answers wrong field types and unknown commands with an error for their id', () => {
    expect(decodeLine('{"id":4,"subscribe":{"channel":5}}')).toMatchObject({ kind: 'invalid', id: 4, code: 'bad_request' });
    expect(decodeLine('{"id":5,"subscribe":{"channel":"a","offset":-1}}')).toMatchObject({ kind: 'invalid', code: 'bad_request' });
    expect(decodeLine('{"id":6,"publish":{"channel":"a"}}')).toMatchObject({ kind: 'invalid', code: 'bad_request' });
    expect(decodeLine('{"id":7,"teleport":{}}')).toMatchObject({ kind: 'invalid', id: 7, code: 'method_not_found' });
    expect(decodeLine('{"id":8,"publish":{"channel":"a","data":1},"subscribe":{"channel":"b"}}')).toMatchObject({
      kind: 'invalid',
      code: 'bad_request',
    });
  });

  it('calls unanswerable lines malformed', () => {
    for (const line of ['not json', '[1,2]', '"s"', '{"id":-1,"ping":{}}', '{"id":1.5,"ping":{}}', '{"id":"1","ping":{}}', '{"subscribe":{"channel":"a"}}']) {
      expect(decodeLine(line).kind, line).toBe('malformed');
    }
  });

  it('never throws, whatever the line', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ id: 1, subscribe: v }))), (line) => {
        const decoded = decodeLine(line);
        expect(['command', 'invalid', 'malformed']).toContain(decoded.kind);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('frames', () => {
  it('splits frames on newlines and skips blank lines', () => {
    expect(splitFrame('{"id":1}\n\n{"id":2}\n')).toEqual(['{"id":1}', '{"id":2}']);
    expect(splitFrame('  ')).toEqual([]);
  });

  it('embeds raw JSON verbatim', () => {
    expect(toWireJson({ a: new RawJson('{"x":[1,2]}'), b: undefined, c: [1, 'two'] })).toBe('{"a":{"x":[1,2]},"c":[1,"two"]}');
    const push = encodePublicationPush('chat:a', { data: '{"t":"é"}', offset: 3, info: { user: 'u', client: 'c', connInfo: '{"n":1}' } });
    expect(JSON.parse(push)).toEqual({
      push: { channel: 'chat:a', pub: { data: { t: 'é' }, offset: 3, info: { user: 'u', client: 'c', conn_info: { n: 1 } } } },
    });
  });
});

describe('subscribe features', () => {
  it('reads delta, type and tf, and refuses map fields as unsupported', () => {
    expect(decodeLine('{"id":1,"subscribe":{"channel":"c","delta":"fossil","type":0,"tf":{"op":"or","nodes":[{"key":"k","cmp":"in","vals":["a","b"]}]}}}')).toEqual({
      kind: 'command',
      command: { id: 1, method: 'subscribe', request: { channel: 'c', delta: 'fossil', type: 0, tf: { op: 'or', nodes: [{ key: 'k', cmp: 'in', vals: ['a', 'b'] }] } } },
    });
    expect(decodeLine('{"id":2,"subscribe":{"channel":"c","cursor":"x"}}')).toMatchObject({ kind: 'invalid', id: 2, code: 'unsupported' });
    expect(decodeLine('{"id":3,"publish":{"channel":"c","data":1,"removed":true}}')).toMatchObject({ kind: 'invalid', id: 3, code: 'unsupported' });
    expect(decodeLine('{"id":4,"subscribe":{"channel":"c","tf":{"vals":[1]}}}')).toMatchObject({ kind: 'invalid', id: 4, code: 'bad_request' });
    let deep: unknown = { key: 'k', cmp: 'ex' };
    for (let i = 0; i < 10; i++) deep = { op: 'not', nodes: [deep] };
    expect(decodeLine(JSON.stringify({ id: 5, subscribe: { channel: 'c', tf: deep } }))).toMatchObject({ kind: 'invalid', id: 5, code: 'bad_request' });
  });

  it('writes delta subscriptions\' payloads as JSON strings, and deltas flagged', () => {
    const pub = { data: '{"a":1}', offset: 3 };
    expect(JSON.parse(jsonCodec.encodePush({ type: 'pub', channel: 'c', pub, form: 'full' }) as string)).toEqual({ push: { channel: 'c', pub: { data: '{"a":1}', offset: 3 } } });
    expect(JSON.parse(jsonCodec.encodePush({ type: 'pub', channel: 'c', pub, form: 'delta', patch: new TextEncoder().encode('7\n1:2;') }) as string)).toEqual({
      push: { channel: 'c', pub: { data: '7\n1:2;', offset: 3, delta: true } },
    });
    expect(JSON.parse(jsonCodec.encodeReply(4, { method: 'subscribe', result: { delta: true, publications: [pub] } }) as string)).toEqual({
      id: 4,
      subscribe: { delta: true, publications: [{ data: '{"a":1}', offset: 3 }] },
    });
  });
});

describe('reply publications shared between replies', () => {
  const pubsOf = (n: number, from = 1): { data: string; offset: number }[] => Array.from({ length: n }, (_, i) => ({ data: `{"n":${from + i}}`, offset: from + i }));
  const offsets = (reply: string | Uint8Array, key: 'subscribe' | 'history'): number[] =>
    (JSON.parse(reply as string) as Record<string, { publications?: { offset: number }[] }>)[key]?.publications?.map((p) => p.offset) ?? [];
  const subscribe = (publications: readonly { data: string; offset: number }[], delta = false): string | Uint8Array =>
    jsonCodec.encodeReply(1, { method: 'subscribe', result: { recovered: true, ...(delta ? { delta: true } : {}), publications: [...publications] } });

  it('the same run, a longer run, a shorter run and a run that differs inside each encode exactly their publications', () => {
    const pubs = pubsOf(10);
    expect(offsets(subscribe(pubs.slice(0, 5)), 'subscribe')).toEqual([1, 2, 3, 4, 5]);
    expect(offsets(subscribe(pubs.slice(0, 5)), 'subscribe')).toEqual([1, 2, 3, 4, 5]);
    expect(offsets(subscribe(pubs.slice(0, 8)), 'subscribe')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(offsets(subscribe(pubs.slice(0, 3)), 'subscribe')).toEqual([1, 2, 3]);
    // Same first, same last, same length, another publication in the middle.
    const other = { data: '{"other":true}', offset: 2 };
    const mixed = [pubs[0], other, pubs[2]] as { data: string; offset: number }[];
    expect(JSON.parse(subscribe(mixed) as string)).toEqual({ id: 1, subscribe: { recovered: true, publications: [{ data: { n: 1 }, offset: 1 }, { data: { other: true }, offset: 2 }, { data: { n: 3 }, offset: 3 }] } });
    expect(offsets(subscribe(pubs.slice(0, 3)), 'subscribe')).toEqual([1, 2, 3]);
    expect(offsets(jsonCodec.encodeReply(2, { method: 'history', result: { publications: pubs.slice(0, 9), epoch: 'e', offset: 9 } }), 'history')).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('a delta subscription gets its payloads as strings even where a plain reply encoded the run', () => {
    const pubs = pubsOf(3);
    expect(JSON.parse(subscribe(pubs) as string)).toMatchObject({ subscribe: { publications: [{ data: { n: 1 } }, { data: { n: 2 } }, { data: { n: 3 } }] } });
    expect(JSON.parse(subscribe(pubs, true) as string)).toMatchObject({ subscribe: { publications: [{ data: '{"n":1}' }, { data: '{"n":2}' }, { data: '{"n":3}' }] } });
  });

  it('any sequence of runs over the same publications encodes each reply as an uncached encoding would', () => {
    const pubs = pubsOf(12);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 11 }), fc.integer({ min: 1, max: 12 }), fc.boolean()), { maxLength: 30 }), (runs) => {
        for (const [start, length, delta] of runs) {
          const run = pubs.slice(start, start + length);
          const expected = run.map((p) => ({ data: delta ? p.data : JSON.parse(p.data) as unknown, offset: p.offset }));
          expect(JSON.parse(subscribe(run, delta) as string)).toEqual({ id: 1, subscribe: { recovered: true, ...(delta ? { delta: true } : {}), publications: expected } });
        }
      }),
      { numRuns: 200 },
    );
  });
});
