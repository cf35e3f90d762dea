import { describe, expect, it } from 'vitest';
import { textFrame } from './text_frame.js';

/** Reads an unmasked single-frame text message as RFC 6455 5.2 lays it out. */
function decode(frame: Buffer): { fin: boolean; opcode: number; masked: boolean; text: string } {
  const first = frame[0] ?? 0;
  const second = frame[1] ?? 0;
  let length = second & 0x7f;
  let offset = 2;
  if (length === 126) {
    length = frame.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    length = Number(frame.readBigUInt64BE(2));
    offset = 10;
  }
  expect(frame.length).toBe(offset + length);
  return { fin: (first & 0x80) !== 0, opcode: first & 0x0f, masked: (second & 0x80) !== 0, text: frame.subarray(offset).toString() };
}

describe('textFrame', () => {
  it('frames text of every length class: FIN, text opcode, unmasked, exact length', () => {
    for (const text of ['', 'é', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(65_535), 'w'.repeat(65_536), '→'.repeat(30_000)]) {
      const { frame, payload } = textFrame(text);
      expect(payload.toString()).toBe(text);
      expect(decode(frame)).toEqual({ fin: true, opcode: 1, masked: false, text });
    }
  });
});
