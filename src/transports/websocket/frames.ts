const TEXT = 0x1;
const BINARY = 0x2;
const FIN = 0x80;
const RSV1 = 0x40;

/** A complete frame and the payload inside it. */
export interface Frame {
  readonly frame: Buffer;
  readonly payload: Buffer;
}

/** Header length of an unmasked frame carrying `length` bytes (RFC 6455 5.2). */
function headerLength(length: number): number {
  return length > 65_535 ? 10 : length > 125 ? 4 : 2;
}

/**
 * A buffer holding the header of one complete, final, unmasked frame of `length` bytes,
 * followed by room for the payload. Server frames are never masked, so one frame serves
 * every connection: a publication is framed once per node, not once per subscriber, and
 * written straight to each socket. Header and payload share one allocation: a reconnect
 * storm frames a large subscribe reply per client, and a second buffer joined to the header
 * was a copy of every reply (and its garbage).
 */
function allocFrame(length: number, opcode: number, rsv1: boolean): { frame: Buffer; offset: number } {
  const offset = headerLength(length);
  const frame = Buffer.allocUnsafe(offset + length);
  frame[0] = FIN | (rsv1 ? RSV1 : 0) | opcode;
  if (offset === 2) {
    frame[1] = length;
  } else if (offset === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  return { frame, offset };
}

function bytesFrame(payload: Uint8Array, opcode: number, rsv1: boolean): Frame {
  const { frame, offset } = allocFrame(payload.byteLength, opcode, rsv1);
  frame.set(payload, offset);
  return { frame, payload: frame.subarray(offset) };
}

/** A text frame (a JSON protocol message), encoded to UTF-8 in place after its header. */
export function textFrame(text: string): Frame {
  const { frame, offset } = allocFrame(Buffer.byteLength(text, 'utf8'), TEXT, false);
  frame.write(text, offset, 'utf8');
  return { frame, payload: frame.subarray(offset) };
}

/** A frame whose payload is a message deflated by permessage-deflate (RFC 7692: RSV1 set). */
export function deflatedFrame(deflated: Buffer, binary: boolean): Frame {
  return bytesFrame(deflated, binary ? BINARY : TEXT, true);
}

/** A binary frame (a Protobuf protocol message). */
export function binaryFrame(payload: Uint8Array): Frame {
  return bytesFrame(payload, BINARY, false);
}
