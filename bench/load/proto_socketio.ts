import type { WebSocket } from 'ws';
import type { Position } from './messages.js';
import { openSocket } from './socket.js';
import { readPayload, type ClientHandler, type LeanClient, type LeanClientOptions } from './lean_client.js';

/**
 * Socket.IO v5 over engine.io v4 text frames, websocket transport only:
 * `0{...}` open -> send `40`; `40{...}` namespace connected; `2` ping -> `3` pong;
 * `42["msg",D]` events; `42<id>["join",R]` -> `43<id>[...]` ack.
 */
export class SocketIoLeanClient implements LeanClient {
  private readonly ws: WebSocket;
  private nextAck = 1;
  private readonly acks = new Map<number, number>();

  constructor(
    options: LeanClientOptions,
    private readonly handler: ClientHandler,
  ) {
    const url = `${options.baseUrl}/socket.io/?EIO=4&transport=websocket`;
    this.ws = openSocket(url, options.localAddress, handler, () => undefined, (text) => this.onText(text));
  }

  private onText(text: string): void {
    const kind = text.charCodeAt(0);
    if (kind === 0x34 /* 4: message */) {
      const packet = text.charCodeAt(1);
      if (packet === 0x32 /* 2: event */) {
        const event: unknown = JSON.parse(text.slice(2));
        if (Array.isArray(event) && event[0] === 'msg') this.handler.publication(readPayload(event[1]), -1, false);
      } else if (packet === 0x33 /* 3: ack */) {
        const id = Number(/^43(\d+)/.exec(text)?.[1]);
        const room = this.acks.get(id);
        if (room !== undefined) {
          this.acks.delete(id);
          this.handler.subscribed({ room, position: null, recovered: false, replayed: 0 });
        }
      } else if (packet === 0x30 /* 0: connect */) {
        this.handler.ready();
      } else if (packet === 0x34 /* 4: connect_error */) {
        this.handler.refused(text.slice(2));
      }
    } else if (kind === 0x32 /* 2: ping */) {
      this.ws.send('3');
    } else if (kind === 0x30 /* 0: open */) {
      this.ws.send('40');
    }
  }

  subscribe(room: number, _recover: Position | null): void {
    const id = this.nextAck++;
    this.acks.set(id, room);
    this.ws.send(`42${id}["join","r${room}"]`);
  }

  publish(room: number, payloadJson: string): void {
    this.ws.send(`42["pub","r${room}",${payloadJson}]`);
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  terminate(): void {
    this.ws.terminate();
  }
}
