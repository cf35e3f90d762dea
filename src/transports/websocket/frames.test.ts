import * as wsModule from 'ws';
import { describe, expect, it } from 'vitest';
import { binaryFrame, textFrame } from './frames.js';

interface WsReceiver {
  on(event: 'message', listener: (data: Buffer, isBinary: boolean) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  write(chunk: Buffer): boolean;
}
const { Receiver } = wsModule as unknown as { Receiver: new (options: { isServer: boolean; maxPayload: number }) => WsReceiver };

/** The messages `ws`'s own receiver reads from `bytes`, as a client does (server frames are unmasked). */
function receive(bytes: Buffer): { data: Buffer; isBinary: boolean }[] {
  const receiver = new Receiver({ isServer: false, maxPayload: 0 });
  const messages: { data: Buffer; isBinary: boolean }[] = [];
  const errors: Error[] = [];
  receiver.on('message', (data, isBinary) => messages.push({ data: Buffer.from(data), isBinary }));
  receiver.on('error', (err) => errors.push(err));
  receiver.write(bytes);
  expect(errors).toEqual([]);
  return messages;
}

const LENGTHS = ['', 'é', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(65_535), 'w'.repeat(65_536), '→'.repeat(30_000)];

describe('WebSocket frames', () => {
  it('text frames of every length class read back as one text message each, FIN and unmasked', () => {
    for (const text of LENGTHS) {
      const { frame, payload } = textFrame(text);
      expect(payload.toString()).toBe(text);
      expect(frame[0]).toBe(0x81);
      expect((frame[1] ?? 0) & 0x80).toBe(0);
      expect(receive(frame)).toEqual([{ data: Buffer.from(text), isBinary: false }]);
    }
  });

  it('binary frames read back as binary messages', () => {
    for (const text of LENGTHS) {
      const bytes = new Uint8Array(Buffer.from(text));
      const { frame, payload } = binaryFrame(bytes);
      expect(Buffer.compare(payload, Buffer.from(bytes))).toBe(0);
      expect(receive(frame)).toEqual([{ data: Buffer.from(bytes), isBinary: true }]);
    }
  });

  it('frames written back to back read as separate messages, in order', () => {
    const texts = ['{"a":1}', 'b'.repeat(300), '', 'c'.repeat(70_000)];
    const joined = Buffer.concat(texts.map((t) => textFrame(t).frame));
    expect(receive(joined).map((m) => m.data.toString())).toEqual(texts);
  });
});
