import { constants, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FrameDeflater } from './frame_deflater.js';

const deflater = new FrameDeflater({ threshold: 1024, level: 1, memLevel: 5, windowBits: 12 });

/** The payload of an unmasked server frame. */
function payloadOf(frame: Buffer): Buffer {
  const length = frame[1] as number;
  if (length < 126) return frame.subarray(2);
  if (length === 126) return frame.subarray(4);
  return frame.subarray(10);
}

describe('FrameDeflater', () => {
  it('compresses a message at or above the threshold into one RSV1 frame that inflates back (RFC 7692 trailer removed)', () => {
    const text = JSON.stringify({ push: { channel: 'chat:x', pub: { data: { text: 'relais '.repeat(2000) } } } });
    const frame = deflater.frame(text);
    expect(frame[0]).toBe(0xc1);
    expect(frame.length).toBeLessThan(text.length / 10);
    const inflated = inflateRawSync(Buffer.concat([payloadOf(frame), Buffer.from([0x00, 0x00, 0xff, 0xff])]), { windowBits: 12, finishFlush: constants.Z_SYNC_FLUSH });
    expect(inflated.toString()).toBe(text);
  });

  it('sends a message under the threshold as a plain text frame', () => {
    const frame = deflater.frame('{"id":1,"publish":{}}');
    expect(frame[0]).toBe(0x81);
    expect(payloadOf(frame).toString()).toBe('{"id":1,"publish":{}}');
  });
});
