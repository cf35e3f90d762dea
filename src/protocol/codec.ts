/**
 * The seam between a connection and its wire format. One codec per protocol (JSON,
 * Protobuf), shared by every connection speaking it and by every transport that carries
 * it: a codec knows messages, not frames, sockets or streams.
 */
import type { Command, ErrorWire, PushMessage, ReplyResult } from './types.js';

export type ProtocolName = 'json' | 'protobuf';

/**
 * One protocol message, encoded: JSON text, or for Protobuf the bytes of one
 * varint length-delimited Reply. A transport that joins several in one frame concatenates
 * them (Protobuf) or separates them with '\n' (JSON).
 */
export type EncodedMessage = string | Uint8Array;

/** What one command of an incoming frame decoded to. */
export type DecodedCommand =
  | { readonly kind: 'command'; readonly command: Command }
  /** A command we can answer with an error reply (its id is known). */
  | { readonly kind: 'invalid'; readonly id: number; readonly code: 'bad_request' | 'method_not_found' | 'unsupported'; readonly message: string }
  /** Input that cannot be answered (no usable id, not the protocol at all). Ends the connection. */
  | { readonly kind: 'malformed'; readonly message: string };

export interface ProtocolCodec {
  readonly name: ProtocolName;
  /** Whether its messages are bytes (binary WebSocket frames) rather than text. */
  readonly binary: boolean;
  /**
   * Decodes one incoming frame into its commands, in order. A `malformed` entry is the
   * last one: nothing after it is read.
   */
  decodeFrame(frame: string | Uint8Array): DecodedCommand[];
  encodeReply(id: number, reply: ReplyResult): EncodedMessage;
  encodeError(id: number, error: ErrorWire): EncodedMessage;
  encodePush(push: PushMessage): EncodedMessage;
  /** The server's ping: an empty reply. The client answers with an empty command. */
  readonly ping: EncodedMessage;
}
