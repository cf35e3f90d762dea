import type { WebSocket } from 'ws';
import type { Position } from './messages.js';
import { isRecord } from './messages.js';
import { openSocket } from './socket.js';
import { readPayload, type ClientHandler, type LeanClient, type LeanClientOptions } from './lean_client.js';

/**
 * The bare `ws` target's protocol: `{"t":"sub","room":R}` -> `{"t":"subok","room":R}`,
 * `{"t":"pub","room":R,"data":D}`, deliveries `{"t":"msg","room":R,"data":D}`.
 */
export class WsLeanClient implements LeanClient {
  private readonly ws: WebSocket;

  constructor(
    options: LeanClientOptions,
    private readonly handler: ClientHandler,
  ) {
    this.ws = openSocket(options.baseUrl, options.localAddress, handler, () => handler.ready(), (text) => this.onText(text));
  }

  private onText(text: string): void {
    const msg: unknown = JSON.parse(text);
    if (!isRecord(msg)) return;
    if (msg['t'] === 'msg') {
      this.handler.publication(readPayload(msg['data']), -1, false);
    } else if (msg['t'] === 'subok') {
      const room = Number(String(msg['room']).slice(1));
      this.handler.subscribed({ room, position: null, recovered: false, replayed: 0 });
    }
  }

  subscribe(room: number, _recover: Position | null): void {
    this.ws.send(`{"t":"sub","room":"r${room}"}`);
  }

  publish(room: number, payloadJson: string): void {
    this.ws.send(`{"t":"pub","room":"r${room}","data":${payloadJson}}`);
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  terminate(): void {
    this.ws.terminate();
  }
}
