import * as wsModule from 'ws';

/** `ws`'s own framer (RFC 6455 5.2), which @types/ws does not declare. */
interface WsFramer {
  frame(data: Buffer, options: { fin: boolean; opcode: number; mask: boolean; readOnly: boolean; rsv1: boolean }): Buffer[];
}

const { Sender } = wsModule as unknown as { Sender: WsFramer };

const TEXT = 0x1;
const BINARY = 0x2;

/** A complete frame and the payload inside it. */
export interface Frame {
  readonly frame: Buffer;
  readonly payload: Buffer;
}

/**
 * One complete, final, unmasked frame holding `payload`, its header built by `ws`. Server
 * frames are never masked, so one frame serves every connection: a publication is framed
 * once per node, not once per subscriber, and written straight to each socket.
 */
function frameOf(payload: Buffer, opcode: number, rsv1 = false): Frame {
  const parts = Sender.frame(payload, { fin: true, opcode, mask: false, readOnly: true, rsv1 });
  const frame = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  return { frame, payload: frame.subarray(frame.length - payload.length) };
}

/** A text frame (a JSON protocol message). */
export function textFrame(text: string): Frame {
  return frameOf(Buffer.from(text, 'utf8'), TEXT);
}

/** A frame whose payload is a message deflated by permessage-deflate (RFC 7692: RSV1 set). */
export function deflatedFrame(deflated: Buffer, binary: boolean): Frame {
  return frameOf(deflated, binary ? BINARY : TEXT, true);
}

/** A binary frame (a Protobuf protocol message). */
export function binaryFrame(payload: Uint8Array): Frame {
  return frameOf(Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), BINARY);
}
