import { Centrifuge, type PublicationContext, type SubscribedContext } from 'centrifuge';
import { jwtVerify } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import {
  OffsetGuard,
  chatChannel,
  directAddress,
  isChatMessage,
  mintToken,
  personalChannel,
  roomOf,
  subscribeTyped,
  type ChatMessage,
  type OffsetGap,
} from './index.js';

describe('channel names', () => {
  it('builds the names of the embedded namespaces', () => {
    expect(chatChannel('general')).toBe('chat:general');
    expect(personalChannel('alice')).toBe('user:alice');
    expect(directAddress('alice')).toBe('@alice');
    expect(roomOf('chat:general')).toBe('general');
    expect(roomOf('chat:a:b')).toBe('a:b');
    expect(roomOf('user:alice')).toBeUndefined();
    expect(roomOf('chat:')).toBeUndefined();
  });

  it('refuses names the server would refuse, saying why', () => {
    expect(() => chatChannel('')).toThrow(TypeError);
    expect(() => chatChannel('two words')).toThrow(/invalid room name "two words"/);
    expect(() => personalChannel('al ice')).toThrow(/invalid user id/);
    expect(() => directAddress('é')).toThrow(TypeError);
  });

  it('recognises chat messages', () => {
    expect(isChatMessage({ text: 'hi' })).toBe(true);
    expect(isChatMessage({ text: 3 })).toBe(false);
    expect(isChatMessage('hi')).toBe(false);
    expect(isChatMessage(null)).toBe(false);
  });
});

describe('mintToken', () => {
  it('signs an HS256 token with the user as subject', async () => {
    const secret = 'a-test-secret-0123456789';
    const token = await mintToken(secret, { user: 'alice', ttlSeconds: 60, info: { name: 'Alice' } });
    const { payload, protectedHeader } = await jwtVerify(token, new TextEncoder().encode(secret));
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload.sub).toBe('alice');
    expect(payload['info']).toEqual({ name: 'Alice' });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(60);
  });
});

function subscribed(offset: number | undefined, epoch = 'e1', recovery: { wasRecovering?: boolean; recovered?: boolean } = {}): SubscribedContext {
  return {
    channel: 'chat:test',
    recoverable: offset !== undefined,
    positioned: offset !== undefined,
    ...(offset !== undefined ? { streamPosition: { offset, epoch } } : {}),
    wasRecovering: recovery.wasRecovering ?? false,
    recovered: recovery.recovered ?? false,
    hasRecoveredPublications: false,
  };
}

describe('OffsetGuard', () => {
  it('admits only offsets past the position subscribed at, and past the last delivered', () => {
    const guard = new OffsetGuard();
    expect(guard.subscribed(subscribed(5))).toBeUndefined();
    expect(guard.check(6)).toEqual({ fresh: true });
    guard.delivered(6);
    expect(guard.check(6).fresh).toBe(false);
    expect(guard.check(9)).toEqual({ fresh: true, gap: { from: 7, to: 8 } });
    expect(guard.position).toEqual({ offset: 6, epoch: 'e1' });
  });

  it('admits the latest publications a first subscribe reply carries (history_on_join) once each, in order, then the live stream', () => {
    const guard = new OffsetGuard();
    guard.subscribed(subscribed(5));
    for (const offset of [3, 4, 5]) {
      expect(guard.check(offset)).toEqual({ fresh: true });
      guard.delivered(offset);
    }
    expect(guard.check(4).fresh).toBe(false);
    expect(guard.check(5).fresh).toBe(false);
    expect(guard.check(6)).toEqual({ fresh: true });
    guard.delivered(6);
    expect(guard.check(3).fresh).toBe(false);
    // Subscribed again without recovery in the same epoch: nothing already delivered comes twice.
    guard.subscribed(subscribed(8));
    expect(guard.check(6).fresh).toBe(false);
    expect(guard.check(7)).toEqual({ fresh: true });
  });

  it('keeps its place through a successful recovery, so a repeated publication is dropped', () => {
    const guard = new OffsetGuard();
    guard.subscribed(subscribed(0));
    for (const offset of [1, 2, 3]) guard.delivered(offset);
    // The server answers a recovery with a position that may be anywhere; the guard keeps 3.
    expect(guard.subscribed(subscribed(10, 'e1', { wasRecovering: true, recovered: true }))).toBeUndefined();
    expect(guard.check(3).fresh).toBe(false);
    expect(guard.check(4)).toEqual({ fresh: true });
  });

  it('reports the gap of a failed recovery and starts again from the new position', () => {
    const guard = new OffsetGuard();
    guard.subscribed(subscribed(0));
    guard.delivered(1);
    expect(guard.subscribed(subscribed(20, 'e1', { wasRecovering: true, recovered: false }))).toEqual({ from: 2, to: 20 });
    expect(guard.check(20).fresh).toBe(false);
    expect(guard.check(21)).toEqual({ fresh: true });
  });

  it('starts over in a new epoch, and admits everything on a channel without positions', () => {
    const guard = new OffsetGuard();
    guard.subscribed(subscribed(0));
    guard.delivered(50);
    expect(guard.subscribed(subscribed(2, 'e2', { wasRecovering: true, recovered: true }))).toBeUndefined();
    expect(guard.check(3)).toEqual({ fresh: true });
    guard.subscribed(subscribed(undefined));
    expect(guard.check(undefined)).toEqual({ fresh: true });
    expect(guard.check(1)).toEqual({ fresh: true });
  });
});

describe('subscribeTyped', () => {
  // A client that never connects: the subscription's events are driven by hand.
  let centrifuge: Centrifuge | undefined;
  afterEach(() => centrifuge?.disconnect());

  const publication = (offset: number, data: unknown): PublicationContext => ({ channel: 'chat:test', offset, data });

  it('hands each offset once, in order, typed and parsed, and reports gaps and invalid data', () => {
    centrifuge = new Centrifuge('ws://127.0.0.1:9/connection/websocket');
    const got: { text: string; offset: number | undefined }[] = [];
    const gaps: OffsetGap[] = [];
    const invalid: number[] = [];
    const sub = subscribeTyped<ChatMessage>(centrifuge, 'chat:test', (message, ctx) => got.push({ text: message.text, offset: ctx.offset }), {
      parse: (data) => {
        if (!isChatMessage(data)) throw new TypeError('not a chat message');
        return data;
      },
      onGap: (gap) => gaps.push(gap),
      onInvalid: (_err, ctx) => invalid.push(ctx.offset ?? -1),
    });
    expect(sub.channel).toBe('chat:test');
    expect(centrifuge.getSubscription('chat:test')).toBe(sub);

    sub.emit('subscribed', subscribed(0));
    sub.emit('publication', publication(1, { text: 'one' }));
    sub.emit('publication', publication(1, { text: 'one again' }));
    sub.emit('publication', publication(2, { nope: true }));
    sub.emit('publication', publication(4, { text: 'four' }));
    sub.emit('subscribed', subscribed(4, 'e1', { wasRecovering: true, recovered: true }));
    sub.emit('publication', publication(4, { text: 'four, recovered twice' }));
    sub.emit('publication', publication(5, { text: 'five' }));

    expect(got).toEqual([
      { text: 'one', offset: 1 },
      { text: 'four', offset: 4 },
      { text: 'five', offset: 5 },
    ]);
    expect(invalid).toEqual([2]);
    expect(gaps).toEqual([{ from: 3, to: 3 }]);
  });

  it('does not count a publication whose handler threw as delivered', () => {
    centrifuge = new Centrifuge('ws://127.0.0.1:9/connection/websocket');
    const seen: number[] = [];
    let fail = true;
    const sub = subscribeTyped<unknown>(centrifuge, 'chat:test', (_data, ctx) => {
      if (fail) throw new Error('handler failed');
      seen.push(ctx.offset ?? -1);
    });
    sub.emit('subscribed', subscribed(0));
    // Called directly: the SDK's emit would stop the client on the exception, which is its rule.
    const [listener] = sub.listeners('publication');
    expect(() => listener?.(publication(1, 'x'))).toThrow('handler failed');
    fail = false;
    listener?.(publication(1, 'x'));
    listener?.(publication(1, 'x'));
    expect(seen).toEqual([1]);
  });

  it('throws like newSubscription when the channel already has a subscription', () => {
    centrifuge = new Centrifuge('ws://127.0.0.1:9/connection/websocket');
    subscribeTyped(centrifuge, 'chat:test', () => undefined);
    expect(() => subscribeTyped(centrifuge as Centrifuge, 'chat:test', () => undefined)).toThrow();
  });
});
