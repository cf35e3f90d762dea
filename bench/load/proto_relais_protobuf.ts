import protobuf from 'protobufjs';
import type { WebSocket } from 'ws';
import { CLIENT_PROTO } from '../../src/protocol/protobuf_schema.js';
import type { Position } from './messages.js';
import { isRecord } from './messages.js';
import { openSocket } from './socket.js';
import { connectionToken } from './jwt.js';
import { readPayload, type ClientHandler, type LeanClient, type LeanClientOptions } from './lean_client.js';

const CHANNEL_PREFIX = 'bench:r';
const CONNECT_ID = 1;
const root = protobuf.parse(CLIENT_PROTO, { keepCase: true }).root;
const Command = root.lookupType('centrifugal.centrifuge.protocol.Command');
const Reply = root.lookupType('centrifugal.centrifuge.protocol.Reply');
const PONG = Command.encodeDelimited({}).finish();
const utf8 = new TextEncoder();

type Msg = Record<string, unknown>;

function offsetOf(value: unknown): number {
  if (value === undefined || value === null) return -1;
  return typeof value === 'object' && 'toNumber' in value ? (value as { toNumber(): number }).toNumber() : Number(value);
}

function payloadOf(data: unknown): ReturnType<typeof readPayload> {
  if (!(data instanceof Uint8Array) || data.length === 0) return null;
  return readPayload(JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')));
}

/**
 * Centrifugo client protocol v2, Protobuf (the `centrifuge-protobuf` subprotocol): varint
 * length-delimited Commands and Replies in binary frames; an empty Reply is a ping,
 * answered with an empty Command. The payloads are the bytes of the same JSON as the JSON
 * client's.
 */
export class RelaisProtobufLeanClient implements LeanClient {
  private readonly ws: WebSocket;
  private nextId = CONNECT_ID + 1;
  private readonly subscribing = new Map<number, number>();

  constructor(
    private readonly options: LeanClientOptions,
    private readonly handler: ClientHandler,
  ) {
    this.ws = openSocket(
      `${options.baseUrl}/connection/websocket`,
      options.localAddress,
      handler,
      () => this.sendConnect(),
      () => undefined,
      { subprotocol: 'centrifuge-protobuf', onBinary: (data) => this.onBinary(data) },
    );
  }

  private send(command: Msg): void {
    this.ws.send(Command.encodeDelimited(command).finish());
  }

  private sendConnect(): void {
    this.send({ id: CONNECT_ID, connect: { token: connectionToken(this.options.tokenSecret ?? '', this.options.user), name: 'bench' } });
  }

  private onBinary(data: Buffer): void {
    const reader = protobuf.Reader.create(data);
    while (reader.pos < reader.len) this.onReply(Reply.decodeDelimited(reader));
  }

  private onReply(reply: Msg): void {
    const push = reply['push'];
    if (isRecord(push)) {
      if (isRecord(push['pub'])) this.onPublication(push['pub'], false);
      return;
    }
    const id = reply['id'];
    if (typeof id !== 'number' || id === 0) {
      this.ws.send(PONG);
      return;
    }
    if (isRecord(reply['error'])) {
      this.subscribing.delete(id);
      this.handler.refused(`${String(reply['error']['code'])} ${String(reply['error']['message'])}`);
      return;
    }
    if (id === CONNECT_ID) {
      this.handler.ready();
      return;
    }
    const room = this.subscribing.get(id);
    const result = reply['subscribe'];
    if (room === undefined || !isRecord(result)) return;
    this.subscribing.delete(id);
    const publications = Array.isArray(result['publications']) ? (result['publications'] as unknown[]) : [];
    const epoch = result['epoch'];
    this.handler.subscribed({
      room,
      position: typeof epoch === 'string' && epoch !== '' ? { epoch, offset: offsetOf(result['offset']) } : null,
      recovered: result['recovered'] === true,
      replayed: publications.length,
    });
    for (const pub of publications) if (isRecord(pub)) this.onPublication(pub, true);
  }

  private onPublication(pub: Msg, fromRecovery: boolean): void {
    this.handler.publication(payloadOf(pub['data']), offsetOf(pub['offset']), fromRecovery);
  }

  subscribe(room: number, recover: Position | null): void {
    const id = this.nextId++;
    this.subscribing.set(id, room);
    this.send({ id, subscribe: { channel: `${CHANNEL_PREFIX}${room}`, ...(recover ? { recover: true, offset: recover.offset, epoch: recover.epoch } : {}) } });
  }

  publish(room: number, payloadJson: string): void {
    this.send({ id: this.nextId++, publish: { channel: `${CHANNEL_PREFIX}${room}`, data: utf8.encode(payloadJson) } });
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  terminate(): void {
    this.ws.terminate();
  }
}
