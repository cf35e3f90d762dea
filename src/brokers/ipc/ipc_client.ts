import { errorTable, RelaisError, type RelaisErrorCode } from '../../core/errors.js';
import type { IpcLink } from './ipc_link.js';
import { isToWorker, type IpcRequest, type ToPrimary, type ToWorker } from './protocol.js';

/** An event the primary pushes: a publication, join or leave of a wanted channel, or a control message. */
export type PrimaryEvent = Exclude<ToWorker, { kind: 'reply' | 'failure' }>;

/** How long a request to the primary may take before it fails as the bus being unavailable. */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * A worker's requests to its primary and the events the primary pushes: each request gets its
 * reply or fails (a RelaisError with the primary's code, or BROKER_UNAVAILABLE when the
 * primary does not answer in time or is gone).
 */
export class PrimaryClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private closed = false;
  private onEvent: (event: PrimaryEvent) => void = () => undefined;

  constructor(private readonly link: IpcLink) {
    link.onMessage((message) => {
      if (!isToWorker(message)) return;
      if (message.kind === 'reply' || message.kind === 'failure') {
        const waiter = this.waiting.get(message.id);
        if (!waiter) return;
        this.waiting.delete(message.id);
        clearTimeout(waiter.timer);
        if (message.kind === 'reply') waiter.resolve(message.result);
        else waiter.reject(failure(message.code, message.message));
        return;
      }
      this.onEvent(message);
    });
    link.onClose(() => this.close());
  }

  /** Where the bus's events go (the worker's broker); one receiver. */
  receiveEvents(receiver: (event: PrimaryEvent) => void): void {
    this.onEvent = receiver;
  }

  request<T>(request: IpcRequest): Promise<T> {
    if (this.closed) return Promise.reject(new RelaisError('BROKER_UNAVAILABLE', 'the primary process is gone'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new RelaisError('BROKER_UNAVAILABLE', `the primary process did not answer ${request.op} within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      timer.unref();
      this.waiting.set(id, { resolve: resolve as (r: unknown) => void, reject, timer });
      this.link.send({ kind: 'request', id, request } satisfies ToPrimary);
    });
  }

  close(): void {
    this.closed = true;
    for (const [id, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.reject(new RelaisError('BROKER_UNAVAILABLE', 'the primary process is gone'));
      this.waiting.delete(id);
    }
  }
}

function failure(code: string | undefined, message: string): RelaisError {
  const known = code !== undefined && code in errorTable ? (code as RelaisErrorCode) : 'INTERNAL';
  return new RelaisError(known, message);
}
