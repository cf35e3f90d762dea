/**
 * The message channel between the primary process of `relais serve --workers N` and one of
 * its workers: node's cluster IPC in production, an in-process pair in tests. Messages keep
 * their order; each is a structured-cloneable value.
 */
import type { Worker } from 'node:cluster';

export interface IpcLink {
  send(message: unknown): void;
  /** Every message from the other side, in order. One listener per link. */
  onMessage(listener: (message: unknown) => void): void;
  /** The other side is gone (the worker exited, the primary disconnected). */
  onClose(listener: () => void): void;
}

/** A worker's link to its primary, over the process's IPC channel. */
export function primaryLink(): IpcLink {
  const send = process.send?.bind(process);
  if (!send) throw new Error('not a worker: no IPC channel to the primary');
  return {
    send: (message) => void send(message),
    onMessage: (listener) => void process.on('message', listener),
    onClose: (listener) => void process.on('disconnect', listener),
  };
}

/** The primary's link to one worker. */
export function workerLink(worker: Worker): IpcLink {
  return {
    send: (message) => {
      if (worker.isConnected()) worker.send(message as never);
    },
    onMessage: (listener) => void worker.on('message', listener),
    onClose: (listener) => void worker.on('exit', listener),
  };
}

/** An in-process link end (tests) that can also be cut, as a worker exiting would. */
export interface TestLink extends IpcLink {
  /** Both ends see the link close, after the messages already sent. */
  close(): void;
}

/** Two ends of an in-process link (tests): each message is cloned and delivered on a later tick, in order. */
export function linkedPair(): [TestLink, TestLink] {
  const listeners: [((m: unknown) => void) | undefined, ((m: unknown) => void) | undefined] = [undefined, undefined];
  const closers: [(() => void)[], (() => void)[]] = [[], []];
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    setImmediate(() => {
      for (const closer of [...closers[0], ...closers[1]]) closer();
    });
  };
  const end = (self: 0 | 1): TestLink => {
    const other = self === 0 ? 1 : 0;
    return {
      send: (message) => {
        if (closed) return;
        const copy = structuredClone(message);
        setImmediate(() => listeners[other]?.(copy));
      },
      onMessage: (listener) => {
        listeners[self] = listener;
      },
      onClose: (listener) => void closers[self].push(listener),
      close,
    };
  };
  return [end(0), end(1)];
}
