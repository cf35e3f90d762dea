/** Real `centrifuge` SDK clients (and raw WebSocket clients) for integration tests. */
import type { Centrifuge, PublicationContext, Subscription, SubscriptionOptions } from 'centrifuge';
import WebSocket from 'ws';
import type { RelaisProcess } from './relais.js';
import type { SdkConnection } from './sdk_transports.js';
import { NEWEST_SDK, type SdkRelease } from './sdk_versions.js';

/** Resolves once `check` holds, polling every 10 ms; rejects after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface SdkClient {
  readonly centrifuge: Centrifuge;
  /** Every publication received, per channel, in arrival order. */
  readonly received: Map<string, PublicationContext[]>;
  subscribe(channel: string, options?: Partial<SubscriptionOptions>): Subscription;
  pubs(channel: string): PublicationContext[];
  close(): void;
}

/** A `centrifuge` client connected with a token for `user`. */
export async function sdkClient(
  relais: RelaisProcess,
  user: string,
  options: { token?: string; url?: string; sdk?: SdkRelease; websocket?: typeof WebSocket; connection?: SdkConnection } = {},
): Promise<SdkClient> {
  const token = options.token ?? (await relais.token(user));
  // Over WebSocket unless `connection` says otherwise (the fallback transports).
  const connection = options.connection ?? { endpoint: options.url ?? relais.wsUrl, options: { websocket: options.websocket ?? WebSocket } };
  const centrifuge = new (options.sdk ?? NEWEST_SDK).Centrifuge(connection.endpoint, {
    ...connection.options,
    token,
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
    timeout: 5000,
  });
  const received = new Map<string, PublicationContext[]>();
  const client: SdkClient = {
    centrifuge,
    received,
    subscribe(channel, subOptions = {}) {
      const sub = centrifuge.newSubscription(channel, { minResubscribeDelay: 50, maxResubscribeDelay: 300, ...subOptions });
      sub.on('publication', (ctx) => {
        let list = received.get(channel);
        if (!list) received.set(channel, (list = []));
        list.push(ctx);
      });
      sub.subscribe();
      return sub;
    },
    pubs(channel) {
      return received.get(channel) ?? [];
    },
    close() {
      centrifuge.disconnect();
    },
  };
  centrifuge.connect();
  await centrifuge.ready(5000);
  return client;
}

/** A raw WebSocket speaking the JSON protocol by hand, for malformed and hostile input. */
export class RawClient {
  readonly messages: Record<string, unknown>[] = [];
  closeCode: number | undefined;
  closeReason = '';
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      for (const line of data.toString().split('\n')) {
        if (line.trim() === '') continue;
        this.messages.push(JSON.parse(line) as Record<string, unknown>);
      }
    });
    ws.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
    });
  }

  static async open(relais: RelaisProcess, headers: Record<string, string> = {}): Promise<RawClient> {
    const ws = new WebSocket(relais.wsUrl, { headers });
    const client = new RawClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return client;
  }

  send(frame: string): void {
    this.ws.send(frame);
  }

  sendCommands(...commands: Record<string, unknown>[]): void {
    this.ws.send(commands.map((c) => JSON.stringify(c)).join('\n'));
  }

  /** The reply to command `id`. */
  async reply(id: number, timeoutMs = 5000): Promise<Record<string, unknown>> {
    await waitFor(() => this.messages.some((m) => m['id'] === id), timeoutMs, `reply ${id}`);
    return this.messages.find((m) => m['id'] === id) as Record<string, unknown>;
  }

  async connect(token: string, id = 1): Promise<Record<string, unknown>> {
    this.sendCommands({ id, connect: { token, name: 'raw-test' } });
    return this.reply(id);
  }

  pushes(kind: string, channel?: string): Record<string, unknown>[] {
    return this.messages
      .map((m) => m['push'] as Record<string, unknown> | undefined)
      .filter((p): p is Record<string, unknown> => p !== undefined && p[kind] !== undefined && (channel === undefined || p['channel'] === channel));
  }

  async closed(timeoutMs = 5000): Promise<{ code: number | undefined; reason: string }> {
    await waitFor(() => this.closeCode !== undefined, timeoutMs, 'close');
    return { code: this.closeCode, reason: this.closeReason };
  }

  close(): void {
    this.ws.close();
  }
}
