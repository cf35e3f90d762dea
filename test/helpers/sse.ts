/**
 * SSE clients for integration tests: the `eventsource` npm client (what users run) and a
 * raw reader over fetch (to see headers, comments and ids byte for byte).
 */
import { EventSource, type EventSourceFetchInit, type FetchLikeResponse } from 'eventsource';
import { waitFor } from './clients.js';

/** One SSE event: its type (`message` unless named), data and id (the last id seen, as EventSource keeps it). */
export interface SseEvent {
  readonly type: string;
  readonly data: string;
  readonly id: string;
}

/** The JSON of a publication event. */
export interface SsePublication {
  readonly channel: string;
  readonly offset?: number;
  readonly epoch?: string;
  readonly data: unknown;
  readonly info?: { readonly user: string; readonly client: string; readonly conn_info?: unknown; readonly chan_info?: unknown };
  readonly tags?: Record<string, string>;
  readonly time: number;
}

/** Named events Relais sends besides publications. */
const NAMED_EVENTS = ['subscribed', 'unrecovered', 'expired'] as const;

export function publicationOf(event: SseEvent): SsePublication {
  return JSON.parse(event.data) as SsePublication;
}

export interface EventSourceClientOptions {
  /** Sent as `Authorization: Bearer`; a function is called again for every (re)connection. */
  readonly token?: string | (() => Promise<string>);
  /** Extra request headers of the first connection only (such as an explicit Last-Event-ID). */
  readonly firstHeaders?: Record<string, string>;
  /** Further named events to record (a feature's, such as `progress` and `complete`). */
  readonly events?: readonly string[];
}

/** A request the EventSource made and what the server answered. */
export interface SseAttempt {
  readonly headers: Record<string, string>;
  status?: number;
  responseHeaders?: Headers;
}

/**
 * The `eventsource` client with every event recorded. Connection errors (the client's own
 * `error` events) are kept apart from events the server names.
 */
export class EventSourceClient {
  readonly events: SseEvent[] = [];
  readonly errors: { readonly code: number | undefined; readonly message: string | undefined }[] = [];
  readonly attempts: SseAttempt[] = [];
  opens = 0;
  readonly source: EventSource;

  constructor(url: string, options: EventSourceClientOptions = {}) {
    const fetchWithAuth = async (input: string | URL, init: EventSourceFetchInit): Promise<FetchLikeResponse> => {
      const headers: Record<string, string> = { ...init.headers };
      if (this.attempts.length === 0) Object.assign(headers, options.firstHeaders);
      const token = typeof options.token === 'function' ? await options.token() : options.token;
      if (token !== undefined) headers['Authorization'] = `Bearer ${token}`;
      const attempt: SseAttempt = { headers };
      this.attempts.push(attempt);
      const response = await fetch(input, { ...init, headers });
      attempt.status = response.status;
      attempt.responseHeaders = response.headers;
      return response;
    };
    this.source = new EventSource(url, { fetch: fetchWithAuth });
    this.source.addEventListener('open', () => this.opens++);
    this.source.addEventListener('message', (e) => this.events.push({ type: 'message', data: String(e.data), id: e.lastEventId }));
    for (const type of [...NAMED_EVENTS, ...(options.events ?? [])]) {
      this.source.addEventListener(type, (e: MessageEvent) => this.events.push({ type, data: String(e.data), id: e.lastEventId }));
    }
    this.source.addEventListener('error', (e) => this.errors.push({ code: e.code, message: e.message }));
  }

  /** Publications received, in arrival order. */
  publications(channel?: string): SsePublication[] {
    return this.events
      .filter((e) => e.type === 'message')
      .map(publicationOf)
      .filter((p) => channel === undefined || p.channel === channel);
  }

  named(type: string): Record<string, unknown>[] {
    return this.events.filter((e) => e.type === type).map((e) => JSON.parse(e.data) as Record<string, unknown>);
  }

  /** The id a reconnection would send: the id of the last event. */
  get lastEventId(): string {
    return this.events.at(-1)?.id ?? '';
  }

  async waitForPublications(count: number, timeoutMs = 10_000): Promise<SsePublication[]> {
    await waitFor(() => this.publications().length >= count, timeoutMs, `${count} SSE publications (have ${this.publications().length})`);
    return this.publications();
  }

  async waitForNamed(type: string, count: number, timeoutMs = 10_000): Promise<Record<string, unknown>[]> {
    await waitFor(() => this.named(type).length >= count, timeoutMs, `${count} "${type}" events`);
    return this.named(type);
  }

  close(): void {
    this.source.close();
  }
}

/** An event as the raw reader parsed it, with the id field it carried (if any). */
export interface RawSseEvent {
  readonly type: string;
  readonly data: string;
  readonly id: string | undefined;
}

/**
 * Reads an SSE response byte for byte: status, headers, comments, retry and events. The
 * parser follows the format Relais writes (LF line ends).
 */
export class RawSseStream {
  readonly events: RawSseEvent[] = [];
  readonly comments: string[] = [];
  text = '';
  ended = false;
  private pending = '';
  private readonly reading: Promise<void>;

  private constructor(
    readonly response: Response,
    private readonly controller: AbortController,
  ) {
    this.reading = this.read();
  }

  static async open(url: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<RawSseStream> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error('SSE response headers did not arrive in time')), timeoutMs);
    try {
      const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
      return new RawSseStream(response, controller);
    } finally {
      clearTimeout(timer);
    }
  }

  get status(): number {
    return this.response.status;
  }

  publications(): SsePublication[] {
    return this.events.filter((e) => e.type === 'message').map((e) => JSON.parse(e.data) as SsePublication);
  }

  async waitFor(check: (stream: RawSseStream) => boolean, timeoutMs = 10_000, what = 'SSE condition'): Promise<void> {
    await waitFor(() => check(this), timeoutMs, what);
  }

  async waitForPublications(count: number, timeoutMs = 10_000): Promise<SsePublication[]> {
    await this.waitFor((s) => s.publications().length >= count, timeoutMs, `${count} raw SSE publications (have ${this.publications().length})`);
    return this.publications();
  }

  async close(): Promise<void> {
    this.controller.abort();
    await this.reading;
  }

  private async read(): Promise<void> {
    const body = this.response.body;
    if (!body) {
      this.ended = true;
      return;
    }
    const reader: ReadableStreamDefaultReader<Uint8Array> = body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const chunk = decoder.decode(value, { stream: true });
        this.text += chunk;
        this.parse(chunk);
      }
    } catch {
      // Aborted by close(), or the server cut the connection: either way the stream is over.
    } finally {
      this.ended = true;
    }
  }

  private parse(chunk: string): void {
    this.pending += chunk;
    let end: number;
    while ((end = this.pending.indexOf('\n\n')) >= 0) {
      const block = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      let type = 'message';
      let id: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments.push(line.slice(1).trim());
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = value;
        else if (field === 'id') id = value;
        else if (field === 'data') data.push(value);
      }
      if (data.length > 0) this.events.push({ type, data: data.join('\n'), id });
    }
  }
}
