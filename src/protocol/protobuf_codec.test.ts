import fc from 'fast-check';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { protobufCodec } from './protobuf_codec.js';
import { CLIENT_PROTO } from './protobuf_schema.js';

const root = protobuf.parse(CLIENT_PROTO, { keepCase: true }).root;
const Command = root.lookupType('centrifugal.centrifuge.protocol.Command');
const Reply = root.lookupType('centrifugal.centrifuge.protocol.Reply');
const utf8 = new TextEncoder();

/** Commands as a client writes them: each length-delimited, several in one frame. */
function frame(...commands: Record<string, unknown>[]): Uint8Array {
  const writer = protobuf.Writer.create();
  for (const c of commands) Command.encodeDelimited(c, writer);
  return writer.finish();
}

function replies(bytes: Uint8Array): Record<string, unknown>[] {
  const reader = protobuf.Reader.create(bytes);
  const out: Record<string, unknown>[] = [];
  while (reader.pos < reader.len) out.push(Reply.toObject(Reply.decodeDelimited(reader), { longs: Number, defaults: false }));
  return out;
}

describe('protobufCodec', () => {
  it('decodes the commands of a frame, payloads read as JSON', () => {
    const decoded = protobufCodec.decodeFrame(
      frame(
        { id: 1, connect: { token: 't', name: 'dart' } },
        { id: 2, subscribe: { channel: 'chat:a', recover: true, offset: 12, epoch: 'e', flag: 3, delta: 'fossil' } },
        { id: 3, publish: { channel: 'chat:a', data: utf8.encode('{"x":1}') } },
        { id: 4, history: { channel: 'c', limit: 5, since: { offset: 1, epoch: 'e' }, reverse: true } },
        { id: 5, subscribe: { channel: 'c', tf: { op: 'and', nodes: [{ key: 'k', cmp: 'eq', val: 'v' }] } } },
        {},
      ),
    );
    expect(decoded).toEqual([
      { kind: 'command', command: { id: 1, method: 'connect', request: { token: 't', name: 'dart' } } },
      { kind: 'command', command: { id: 2, method: 'subscribe', request: { channel: 'chat:a', recover: true, offset: 12, epoch: 'e', flag: 3, delta: 'fossil' } } },
      { kind: 'command', command: { id: 3, method: 'publish', request: { channel: 'chat:a', data: { x: 1 } } } },
      { kind: 'command', command: { id: 4, method: 'history', request: { channel: 'c', limit: 5, since: { offset: 1, epoch: 'e' }, reverse: true } } },
      { kind: 'command', command: { id: 5, method: 'subscribe', request: { channel: 'c', tf: { op: 'and', nodes: [{ key: 'k', cmp: 'eq', val: 'v' }] } } } },
      { kind: 'command', command: { id: 0, method: 'pong', request: {} } },
    ]);
  });

  it('refuses payloads that are not JSON, fields Relais does not serve, and garbage', () => {
    const [notJson, mapSub, mapPub] = protobufCodec.decodeFrame(
      frame(
        { id: 1, publish: { channel: 'c', data: new Uint8Array([0xff, 0x00]) } },
        { id: 2, subscribe: { channel: 'c', phase: 1 } },
        { id: 3, publish: { channel: 'c', data: utf8.encode('1'), key: 'k' } },
      ),
    );
    expect(notJson).toMatchObject({ kind: 'invalid', id: 1, code: 'bad_request' });
    expect(mapSub).toMatchObject({ kind: 'invalid', id: 2, code: 'unsupported' });
    expect(mapPub).toMatchObject({ kind: 'invalid', id: 3, code: 'unsupported' });
    expect(protobufCodec.decodeFrame(new Uint8Array([0x05, 0xff, 0xff]))).toMatchObject([{ kind: 'malformed' }]);
    expect(protobufCodec.decodeFrame(frame({ id: 0, subscribe: { channel: 'c' } }))).toMatchObject([{ kind: 'malformed' }]);
  });

  it('never throws, whatever the bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        protobufCodec.decodeFrame(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('encodes replies and pushes as length-delimited Replies with JSON bytes as payloads', () => {
    const pub = { data: '{"a":1}', offset: 7, info: { user: 'u', client: 'c', connInfo: '{"n":1}' }, tags: { k: 'v' } };
    expect(replies(protobufCodec.encodeReply(3, { method: 'history', result: { publications: [pub], epoch: 'e', offset: 7 } }) as Uint8Array)).toEqual([
      {
        id: 3,
        history: {
          publications: [{ data: Buffer.from('{"a":1}'), offset: 7, info: { user: 'u', client: 'c', conn_info: Buffer.from('{"n":1}') }, tags: { k: 'v' } }],
          epoch: 'e',
          offset: 7,
        },
      },
    ]);
    const patch = new Uint8Array([1, 2, 3]);
    expect(replies(protobufCodec.encodePush({ type: 'pub', channel: 'ch', pub, form: 'delta', patch }) as Uint8Array)[0]).toMatchObject({
      push: { channel: 'ch', pub: { data: Buffer.from(patch), delta: true, offset: 7 } },
    });
    expect(replies(protobufCodec.encodeError(9, { code: 107, message: 'bad request' }) as Uint8Array)).toEqual([{ id: 9, error: { code: 107, message: 'bad request' } }]);
    expect(protobufCodec.ping).toEqual(new Uint8Array([0]));
  });
});

describe('subscribe reply publications shared between replies', () => {
  const pubsOf = (n: number): { data: string; offset: number }[] => Array.from({ length: n }, (_, i) => ({ data: `{"n":${i + 1}}`, offset: i + 1 }));
  const subscribe = (id: number, publications: readonly { data: string; offset: number }[]): Record<string, unknown> =>
    // Decoded from a Buffer, so that payloads decode as Buffers whatever the codec allocated.
    replies(Buffer.from(protobufCodec.encodeReply(id, { method: 'subscribe', result: { recovered: true, epoch: 'ep', offset: 12, publications: [...publications] } }) as Uint8Array))[0] ?? {};
  const expected = (id: number, publications: readonly { data: string; offset: number }[]): Record<string, unknown> => ({
    id,
    subscribe: { recovered: true, epoch: 'ep', offset: 12, publications: publications.map((p) => ({ data: Buffer.from(p.data), offset: p.offset })) },
  });

  it('the same run, a longer run, a shorter run and a run that differs inside each decode to exactly their publications', () => {
    const pubs = pubsOf(10);
    for (const run of [pubs.slice(0, 5), pubs.slice(0, 5), pubs.slice(0, 8), pubs.slice(0, 3)]) expect(subscribe(7, run)).toEqual(expected(7, run));
    const mixed = [pubs[0], { data: '{"other":true}', offset: 2 }, pubs[2]] as { data: string; offset: number }[];
    expect(subscribe(300, mixed)).toEqual(expected(300, mixed));
    expect(subscribe(0, pubs.slice(0, 3))).toEqual({ subscribe: expected(0, pubs.slice(0, 3))['subscribe'] });
  });

  it('any sequence of runs over the same publications decodes as the plain encoding of each reply', () => {
    const pubs = pubsOf(12);
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 11 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 100_000 })), { maxLength: 30 }), (runs) => {
        for (const [start, length, id] of runs) {
          const run = pubs.slice(start, start + length);
          const bytes = protobufCodec.encodeReply(id, { method: 'subscribe', result: { recovered: true, epoch: 'ep', offset: 12, publications: run } }) as Uint8Array;
          const plain = Reply.encodeDelimited({ id, subscribe: { recovered: true, epoch: 'ep', offset: 12, publications: run.map((p) => ({ data: utf8.encode(p.data), offset: p.offset })) } }).finish();
          expect(replies(Buffer.from(bytes))).toEqual(replies(Buffer.from(plain)));
          expect(bytes.length).toBe(plain.length);
        }
      }),
      { numRuns: 200 },
    );
  });
});
