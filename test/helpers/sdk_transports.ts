/**
 * How the `centrifuge` SDK reaches Relais in the SDK suite: WebSocket, or one of the fallback
 * transports with bidirectional emulation (HTTP-streaming, SSE), whose commands go to the
 * emulation endpoint of the same instance or of another one.
 */
import type { Options, TransportEndpoint } from 'centrifuge';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import type { RelaisProcess } from './relais.js';

/** The first argument of `new Centrifuge` and the options that go with it. */
export interface SdkConnection {
  readonly endpoint: string | TransportEndpoint[];
  readonly options: Partial<Options>;
}

export interface SdkTransport {
  readonly name: 'websocket' | 'http_stream' | 'sse';
  /** The stream on `stream`; emulation requests (fallback transports) to `commands`. */
  connection(stream: RelaisProcess, commands: RelaisProcess): SdkConnection;
}

export const WEBSOCKET: SdkTransport = {
  name: 'websocket',
  connection: (stream) => ({ endpoint: stream.wsUrl, options: { websocket: WebSocket } }),
};

function emulated(name: 'http_stream' | 'sse'): SdkTransport {
  return {
    name,
    connection: (stream, commands) => ({
      endpoint: [{ transport: name, endpoint: `${stream.httpUrl}/connection/${name}` }],
      // Node 20 has fetch and ReadableStream; EventSource comes from the `eventsource` package.
      options: { fetch, readableStream: ReadableStream, eventsource: EventSource, emulationEndpoint: `${commands.httpUrl}/emulation` },
    }),
  };
}

export const HTTP_STREAM = emulated('http_stream');
export const SSE_EMULATION = emulated('sse');
