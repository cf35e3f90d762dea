import { describe, expect, it } from 'vitest';
import { FrameCache, Hub } from './hub.js';
import type { ClientInfo, Publication } from './publication.js';
import type { JsonText } from './json.js';

describe('FrameCache', () => {
  it('encodes once per encoding function, for any number of protocols and transports', () => {
    const calls: string[] = [];
    const encoder = (name: string) => (channel: string, pub: Publication) => (calls.push(name), `${name}:${channel}:${pub.offset}`);
    const encoders = ['json-ws', 'protobuf-ws', 'sse', 'json-stream'].map(encoder);
    const frames = new FrameCache<Publication>('c', { offset: 1, epoch: 'e', data: '1' as JsonText, time: 0 });
    for (let subscriber = 0; subscriber < 100; subscriber++) for (const encode of encoders) frames.get(encode);
    expect(calls).toEqual(['json-ws', 'protobuf-ws', 'sse', 'json-stream']);
    expect(frames.get(encoders[3] as (typeof encoders)[number])).toBe('json-stream:c:1');
  });

  it('gives each publication the previous one of its channel on this node, the base of its delta', () => {
    const hub = new Hub();
    const seen: [number, number | undefined][] = [];
    hub.add('c', {
      onPublication: (frames) => seen.push([frames.event.offset, frames.previous?.offset]),
      onJoin: (_f: FrameCache<ClientInfo>) => undefined,
      onLeave: (_f: FrameCache<ClientInfo>) => undefined,
      onGap: () => undefined,
    });
    for (const offset of [1, 2, 4, 5]) hub.handlePublication('c', { offset, epoch: 'e', data: '1' as JsonText, time: 0 });
    // 4 skips 3: a gap sends subscribers through recovery and the chain starts again.
    expect(seen).toEqual([
      [1, undefined],
      [2, 1],
      [5, undefined],
    ]);
  });
});
