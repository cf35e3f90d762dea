import type { Position } from './messages.js';
import { isRecord } from './messages.js';

/** The fields of a bench publication's data that the load clients read. */
export interface Payload {
  /** Step id. */
  readonly s: number;
  /** Sequence number within the room and the step. */
  readonly q: number;
  /** Send time, ms (see nowMs). */
  readonly ts: number;
}

export function readPayload(value: unknown): Payload | null {
  if (!isRecord(value)) return null;
  const { s, q, ts } = value;
  return typeof s === 'number' && typeof q === 'number' && typeof ts === 'number' ? { s, q, ts } : null;
}

/** Payload JSON of about 100 bytes with `pad` characters of padding. */
export function encodePayload(step: number, seq: number, ts: number, pad: string): string {
  return `{"s":${step},"q":${seq},"ts":${ts},"p":"${pad}"}`;
}

export interface SubscribeReply {
  readonly room: number;
  /** Stream position after the reply (Relais); null for peers. */
  readonly position: Position | null;
  readonly recovered: boolean;
  readonly replayed: number;
}

/** What a lean client reports; one handler per connection. */
export interface ClientHandler {
  /** The WebSocket is open (TCP and HTTP upgrade done). */
  opened(): void;
  /** Handshake done: the client may subscribe and publish. */
  ready(): void;
  subscribed(reply: SubscribeReply): void;
  /** A publication; offset -1 when the protocol has none; fromRecovery for replayed ones. */
  publication(payload: Payload | null, offset: number, fromRecovery: boolean): void;
  /** A command was refused (subscribe, publish). */
  refused(message: string): void;
  /** The socket closed or failed; called once. */
  closed(reason: string): void;
}

/**
 * A load client over one raw `ws` socket that writes and reads a protocol's frames itself,
 * so that every target is driven by clients of the same cost.
 */
export interface LeanClient {
  subscribe(room: number, recover: Position | null): void;
  publish(room: number, payloadJson: string): void;
  /** Bytes queued in the socket, not yet written. */
  bufferedAmount(): number;
  /** Closes abruptly, like a network loss (no close frame). */
  terminate(): void;
}

export interface LeanClientOptions {
  /** Base URL, `ws://127.0.0.1:port`. */
  readonly baseUrl: string;
  readonly localAddress: string | undefined;
  /** User id for protocols with authentication. */
  readonly user: string;
  readonly tokenSecret: string | undefined;
}
