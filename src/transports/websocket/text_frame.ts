/**
 * A complete unmasked WebSocket text frame of `text` (RFC 6455 5.2: FIN + opcode 1, then
 * the payload length in 7, 16 or 64 bits), encoded straight into its frame. Server frames
 * are never masked, so one frame serves every connection: a publication is framed once per
 * node, not once per subscriber.
 */
export function textFrame(text: string | Buffer): { readonly frame: Buffer; readonly payload: Buffer } {
  const length = typeof text === 'string' ? Buffer.byteLength(text) : text.length;
  const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x81;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  if (typeof text === 'string') frame.write(text, headerLength);
  else text.copy(frame, headerLength);
  return { frame, payload: frame.subarray(headerLength) };
}

