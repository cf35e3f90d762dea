import { describe, expect, it } from 'vitest';
import { toJsonText } from '../../core/json.js';
import type { Publication } from '../../core/publication.js';
import { describeBrokerContract } from '../broker.contract.js';
import { MemoryBroker, MemoryStream } from './broker_memory.js';
import { MemoryPresenceManager } from './presence_memory.js';

describeBrokerContract('memory', {
  distributed: false,
  node: () => Promise.resolve({ broker: new MemoryBroker(), presence: new MemoryPresenceManager() }),
  reset: () => undefined,
});

describe('MemoryStream', () => {
  const pub = (offset: number, time = Date.now()): Publication => ({ offset, epoch: 'e', data: toJsonText({ offset }), time });

  it('keeps the window of each history size, in order, and holds at most max(8, size) dropped publications besides', () => {
    for (const size of [1, 2, 5, 8, 10, 100]) {
      const stream = new MemoryStream();
      let most = 0;
      for (let offset = 1; offset <= 1_000; offset++) {
        stream.append(pub(offset), size, 3_600_000);
        most = Math.max(most, stream.retained);
        const live = stream.live().map((p) => p.offset);
        expect(live).toEqual(Array.from({ length: Math.min(size, offset) }, (_, i) => offset - Math.min(size, offset) + 1 + i));
      }
      expect(most, `history size ${size}`).toBeLessThanOrEqual(size + Math.max(8, size));
    }
  });

  it('drops publications older than the history TTL', () => {
    const stream = new MemoryStream();
    for (let offset = 1; offset <= 30; offset++) stream.append(pub(offset, offset * 1_000), 100, 10_000);
    expect(stream.live().map((p) => p.offset)).toEqual([]);
    stream.append(pub(31, Date.now()), 100, 10_000);
    expect(stream.live().map((p) => p.offset)).toEqual([31]);
  });
});
