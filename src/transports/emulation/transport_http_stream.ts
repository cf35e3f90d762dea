import { framingEncoders, singleLine, type StreamFraming } from './emulated_transport.js';

/**
 * HTTP-streaming (`/connection/http_stream`), as centrifuge-js' `http_stream` transport reads
 * it: a POST whose body holds the connect command, answered by a chunked response of JSON
 * protocol messages, one per line. A binary protocol would frame its messages length-prefixed
 * instead (the SDK's Protobuf reader), with its own framing beside this one.
 */
export const httpStreamFraming: StreamFraming = {
  name: 'http_stream',
  frame: (message) => `${singleLine(message)}\n`,
};

export const httpStreamEncoders = framingEncoders(httpStreamFraming);

/** Response headers: no caching, and no buffering by proxies (nginx reads X-Accel-Buffering). */
export const HTTP_STREAM_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'private, no-cache, no-store, must-revalidate, max-age=0',
  Pragma: 'no-cache',
  Expires: '0',
  'X-Accel-Buffering': 'no',
};
