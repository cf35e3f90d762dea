import type { WebSocket } from 'ws';
import type { Position } from './messages.js';
import { isRecord } from './messages.js';
import { openSocket } from './socket.js';
import { connectionToken } from './jwt.js';
import { readPayload, type ClientHandler, type LeanClient, type LeanClientOptions } from './lean_client.js';

const CHANNEL_PREFIX = 'bench:r';
const CONNECT_ID = 1;

function errorText(value: unknown): string {
  return isRecord(value) ? `${String(value['code'])} ${String(value['message'])}` : String(value);
}

/**
 * Centrifugo client protocol v2, JSON: one or more objects per frame separated by "\n";
 * `{}` from the server is a ping, answered with `{}`.
 */
export class RelaisLeanClient implements LeanClient {
  private readonly ws: WebSocket;
  private nextId = CONNECT_ID + 1;
  /** Subscribe command ids waiting for their reply, to the room they name. */
  private readonly subscribing = new Map<number, number>();

  constructor(
    private readonly options: LeanClientOptions,
    private readonly handler: ClientHandler,
  ) {
    this.ws = openSocket(`${options.baseUrl}/connection/websocket`, options.localAddress, handler, () => this.sendConnect(), (text) => this.onText(text));
  }

  private sendConnect(): void {
    const token = connectionToken(this.options.tokenSecret ?? '', this.options.user);
    this.ws.send(`{"id":${CONNECT_ID},"connect":{"token":"${token}","name":"bench"}}`);
  }

  private onText(text: string): void {
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf('\n', start);
      if (end === -1) end = text.length;
      if (end > start) this.onReply(text.slice(start, end));
      start = end + 1;
    }
  }

  private onReply(line: string): void {
    if (line === '{}') {
      this.ws.send('{}');
      return;
    }
    const reply: unknown = JSON.parse(line);
    if (!isRecord(reply)) return;
    const push = reply['push'];
    if (isRecord(push)) {
      const pub = push['pub'];
      if (isRecord(pub)) this.onPublication(pub, false);
      return;
    }
    const id = reply['id'];
    if (typeof id !== 'number') return;
    if (reply['error'] !== undefined) {
      this.subscribing.delete(id);
      this.handler.refused(errorText(reply['error']));
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
    const offset = result['offset'];
    this.handler.subscribed({
      room,
      position: typeof epoch === 'string' && typeof offset === 'number' ? { epoch, offset } : null,
      recovered: result['recovered'] === true,
      replayed: publications.length,
    });
    for (const pub of publications) if (isRecord(pub)) this.onPublication(pub, true);
  }

  private onPublication(pub: Record<string, unknown>, fromRecovery: boolean): void {
    const offset = pub['offset'];
    this.handler.publication(readPayload(pub['data']), typeof offset === 'number' ? offset : -1, fromRecovery);
  }

  subscribe(room: number, recover: Position | null): void {
    const id = this.nextId++;
    this.subscribing.set(id, room);
    const position = recover ? `,"recover":true,"offset":${recover.offset},"epoch":${JSON.stringify(recover.epoch)}` : '';
    this.ws.send(`{"id":${id},"subscribe":{"channel":"${CHANNEL_PREFIX}${room}"${position}}}`);
  }

  publish(room: number, payloadJson: string): void {
    this.ws.send(`{"id":${this.nextId++},"publish":{"channel":"${CHANNEL_PREFIX}${room}","data":${payloadJson}}}`);
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  terminate(): void {
    this.ws.terminate();
  }
}
