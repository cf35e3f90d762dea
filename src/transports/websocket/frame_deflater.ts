import { constants, deflateRawSync } from 'node:zlib';
import type { EncodedMessage } from '../../protocol/codec.js';
import { binaryFrame, deflatedFrame, textFrame } from './frames.js';

/** The permessage-deflate parameters every compressed connection of a node shares. */
export interface DeflateParams {
  /** Messages smaller than this many bytes go uncompressed. */
  readonly threshold: number;
  readonly level: number;
  readonly memLevel: number;
  /** The server's LZ77 window (server_max_window_bits), the same on every connection. */
  readonly windowBits: number;
}

/** The empty stored block a sync flush ends with; RFC 7692 7.2.1 removes it from each message. */
const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * Compressed WebSocket frames (RFC 7692) built once and written to every connection that
 * negotiated permessage-deflate. Without context takeover each message is compressed alone,
 * with the node's fixed window, so its compressed bytes do not depend on the connection: a
 * publication is deflated once per node, not once per subscriber, and no connection holds a
 * deflate context. ws still inflates what clients send.
 */
export class FrameDeflater {
  constructor(private readonly params: DeflateParams) {}

  /** The complete frame of a message: compressed (RSV1 set) at or above the threshold, else plain; text for JSON, binary for Protobuf. */
  frame(message: EncodedMessage): Buffer {
    const binary = typeof message !== 'string';
    const payload = binary ? Buffer.from(message.buffer, message.byteOffset, message.byteLength) : Buffer.from(message);
    if (payload.length < this.params.threshold) return (binary ? binaryFrame(payload) : textFrame(message)).frame;
    let deflated = deflateRawSync(payload, {
      level: this.params.level,
      memLevel: this.params.memLevel,
      windowBits: this.params.windowBits,
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    if (deflated.subarray(-4).equals(TRAILER)) deflated = deflated.subarray(0, -4);
    return deflatedFrame(deflated, binary).frame;
  }
}
