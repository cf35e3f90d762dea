import type { ProtocolName } from './messages.js';
import type { ClientHandler, LeanClient, LeanClientOptions } from './lean_client.js';
import { WsLeanClient } from './proto_ws.js';
import { SocketIoLeanClient } from './proto_socketio.js';
import { RelaisLeanClient } from './proto_relais.js';
import { RelaisProtobufLeanClient } from './proto_relais_protobuf.js';

/** Opens a lean client of the given protocol; the handler hears everything it receives. */
export function openLeanClient(protocol: ProtocolName, options: LeanClientOptions, handler: ClientHandler): LeanClient {
  switch (protocol) {
    case 'ws':
      return new WsLeanClient(options, handler);
    case 'socketio':
      return new SocketIoLeanClient(options, handler);
    case 'relais':
      return new RelaisLeanClient(options, handler);
    case 'relais-protobuf':
      return new RelaisProtobufLeanClient(options, handler);
  }
}
