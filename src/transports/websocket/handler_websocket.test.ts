import { describe, expect, it } from 'vitest';
import { Receiver } from 'ws';
import { textFrame } from './handler_websocket.js';

/** Decodes frames with ws's own receiver (client side: unmasked frames accepted). */
function decode(frame: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const receiver = new Receiver({ isServer: false });
    receiver.on('message', (data: Buffer, isBinary: boolean) => (isBinary ? reject(new Error('binary')) : resolve(data.toString())));
    receiver.on('error', reject);
    receiver.write(frame);
  });
}

describe('textFrame', () => {
  it('frames text of every length class as ws reads it', async () => {
    for (const text of ['', 'é', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(65_535), 'w'.repeat(65_536), '→'.repeat(30_000)]) {
      const { frame, payload } = textFrame(text);
      expect(payload.toString()).toBe(text);
      expect(await decode(frame)).toBe(text);
    }
  });
});
