import { framingEncoders, singleLine, type StreamFraming } from './emulated_transport.js';

/**
 * SSE with bidirectional emulation (`/connection/sse`), as centrifuge-js' `sse` transport reads
 * it through an EventSource: the connect command in the `cf_connect` query parameter (an
 * EventSource can only GET), each JSON protocol message as the data of one unnamed event.
 * Protocol messages are single-line JSON, so one `data:` line holds each. Unlike `/sse`
 * (unidirectional, for clients without an SDK), no event ids: the SDK recovers by offsets.
 */
export const sseFraming: StreamFraming = {
  name: 'sse',
  frame: (message) => `data: ${singleLine(message)}\n\n`,
};

export const sseEncoders = framingEncoders(sseFraming);

/** The query parameter of the connect command (Centrifugo's name). */
export const CONNECT_PARAM = 'cf_connect';

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'private, no-cache, no-store, must-revalidate, max-age=0',
  Pragma: 'no-cache',
  Expires: '0',
  'X-Accel-Buffering': 'no',
};
