import { describe, expect, it } from 'vitest';
import type { JsonText } from '../../core/json.js';
import { decodeBusMessage, decodeClientInfo, decodeControl, decodePublication, encodeClientInfo, encodeJoinLeave, publicationHead, publicationTail } from './codec.js';
import { RedisKeys, decodeChannel, encodeChannel } from './keys.js';

const text = (s: string): JsonText => s as JsonText;

describe('redis codec', () => {
  it('frames a publication as one JSON document whose data is the original text', () => {
    const data = text('{ "a" :\n [1, 2.50, "\\u00e9"] }');
    const frame = publicationHead(7, 'ep0ch', 1234) + publicationTail(data, { user: 'u', client: 'c', connInfo: text('{"n":1}') }, { k: 'v' });
    expect(JSON.parse(frame)).toEqual([
      { offset: 7, epoch: 'ep0ch', time: 1234, info: { user: 'u', client: 'c', connInfo: '{"n":1}' }, tags: { k: 'v' } },
      { a: [1, 2.5, 'é'] },
    ]);
    const pub = decodePublication(frame);
    expect(pub.data).toBe(data);
    expect(pub).toMatchObject({ offset: 7, epoch: 'ep0ch', time: 1234, tags: { k: 'v' } });
    expect(pub.info?.connInfo).toBe('{"n":1}');
  });

  it('frames a bare publication without info or tags', () => {
    const frame = publicationHead(0, '', 5) + publicationTail(text('"x"'));
    expect(frame).toBe('[{"offset":0,"epoch":"","time":5},\n"x"]');
    expect(decodePublication(frame)).toEqual({ offset: 0, epoch: '', time: 5, data: '"x"' });
  });

  it('keeps header look-alikes inside the data and tags apart from the header', () => {
    const data = text('{"offset":99,"s":"],\\n["}');
    const frame = publicationHead(1, 'e', 1) + publicationTail(data, undefined, { '\n': ',\n' });
    const pub = decodePublication(frame);
    expect(pub.offset).toBe(1);
    expect(pub.data).toBe(data);
    expect(pub.tags).toEqual({ '\n': ',\n' });
  });

  it('tells joins, leaves and publications apart and rejects foreign messages', () => {
    expect(decodeBusMessage(encodeJoinLeave('join', { user: 'u', client: 'c' }))).toEqual({ type: 'join', info: { user: 'u', client: 'c' } });
    expect(decodeBusMessage(encodeJoinLeave('leave', { user: 'u', client: 'c' })).type).toBe('leave');
    expect(decodeBusMessage(publicationHead(1, 'e', 1) + publicationTail(text('1'))).type).toBe('pub');
    expect(() => decodeBusMessage('hello')).toThrow();
    expect(() => decodeBusMessage('{"type":"other"}')).toThrow();
    expect(() => decodePublication('[{"offset":-1,"epoch":"","time":1},\n1]')).toThrow();
    expect(() => decodeControl('{"type":"reboot"}')).toThrow();
    expect(decodeControl('{"type":"message","user":"u","data":"1"}')).toEqual({ type: 'message', user: 'u', data: '1' });
    expect(decodeClientInfo(encodeClientInfo({ user: 'u', client: 'c', chanInfo: text('[]') }))).toEqual({ user: 'u', client: 'c', chanInfo: '[]' });
  });
});

describe('redis keys', () => {
  const keys = new RedisKeys('relais');

  it('tags every key of a channel with the channel', () => {
    expect(keys.stream('chat:a')).toBe('relais.{chat:a}.stream');
    expect(keys.meta('chat:a')).toBe('relais.{chat:a}.meta');
    expect(keys.idempotency('chat:a', 'k')).toBe('relais.{chat:a}.idem.k');
    expect(keys.bus('chat:a')).toBe('relais.{chat:a}.pub');
    expect(keys.control).toBe('relais.control');
  });

  it('encodes braces so that a channel cannot end its hash tag or forge another key', () => {
    for (const channel of ['a}b', '{x}', '%7D', 'plain:ch']) expect(decodeChannel(encodeChannel(channel))).toBe(channel);
    expect(keys.meta('a}.idem.x')).not.toBe(keys.idempotency('a', 'x}.meta'));
    expect(keys.channelOfMeta(keys.meta('a}b'))).toBe('a}b');
    expect(keys.channelOfMeta(keys.idempotency('a', 'x}.meta'))).toBeUndefined();
    expect(keys.channelOfMeta('other.{a}.meta')).toBeUndefined();
    expect(keys.metaScanPattern('chat:*')).toBe('relais.{chat:*}.meta');
  });

  it('refuses prefixes that would break hash tags or SCAN patterns', () => {
    expect(() => new RedisKeys('a{b')).toThrow();
    expect(() => new RedisKeys('a*')).toThrow();
    expect(() => new RedisKeys('')).toThrow();
  });
});
