import { WebSocket } from 'ws';
import type { ClientHandler } from './lean_client.js';

/**
 * Opens the raw socket every lean client uses: no compression, the same options for every
 * protocol. `onText` gets each text frame as a string.
 */
export function openSocket(
  url: string,
  localAddress: string | undefined,
  handler: ClientHandler,
  onOpen: () => void,
  onText: (text: string) => void,
  binary?: { readonly subprotocol: string; readonly onBinary: (data: Buffer) => void },
): WebSocket {
  const ws = new WebSocket(url, binary ? [binary.subprotocol] : [], {
    perMessageDeflate: false,
    handshakeTimeout: 30_000,
    ...(localAddress !== undefined ? { localAddress } : {}),
  });
  let closed = false;
  const close = (reason: string): void => {
    if (closed) return;
    closed = true;
    handler.closed(reason);
  };
  ws.on('open', () => {
    handler.opened();
    onOpen();
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary !== (binary !== undefined)) return;
    try {
      if (binary) binary.onBinary(data);
      else onText(data.toString('utf8'));
    } catch {
      // A frame we cannot read counts as malformed, it does not stop the process.
      handler.publication(null, -1, false);
    }
  });
  ws.on('close', (code: number, reason: Buffer) => close(`close ${code} ${reason.toString('utf8')}`.trim()));
  ws.on('error', (err: Error) => close(`error ${err.message}`));
  return ws;
}
