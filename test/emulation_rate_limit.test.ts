/**
 * The rate limit of `/emulation` (docs/protocol.md, `rate_limit.emulation`): a real Relais
 * process, HTTP-streaming sessions opened and fed over fetch as centrifuge-js does. Requests
 * past a session's or an address's limit are refused whole with 429 (RATE_LIMITED) before any
 * command runs; every command of an accepted request is run and answered, none twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

/** An HTTP-streaming session: its reply lines as they come. */
class Session {
  readonly messages: Record<string, unknown>[] = [];
  session = '';
  node = '';
  private constructor(readonly abort: AbortController) {}

  static async open(relais: RelaisProcess, user: string): Promise<Session> {
    const abort = new AbortController();
    const s = new Session(abort);
    const token = await relais.token(user);
    const response = await fetch(`${relais.httpUrl}/connection/http_stream`, { method: 'POST', body: JSON.stringify({ id: 1, connect: { token } }), headers: { 'content-type': 'application/json' }, signal: abort.signal });
    void s.pump(response);
    await waitFor(() => s.messages.some((m) => m['id'] === 1), 5000, 'connect reply');
    const connect = s.messages.find((m) => m['id'] === 1)?.['connect'] as { session: string; node: string };
    s.session = connect.session;
    s.node = connect.node;
    return s;
  }

  private async pump(response: Response): Promise<void> {
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buffer += decoder.decode(value, { stream: true });
        let at: number;
        while ((at = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, at);
          buffer = buffer.slice(at + 1);
          if (line.trim() !== '') this.messages.push(JSON.parse(line) as Record<string, unknown>);
        }
      }
    } catch {
      // Aborted by the test.
    }
  }

  replies(id: number): number {
    return this.messages.filter((m) => m['id'] === id).length;
  }
}

describe('/emulation rate limit', () => {
  let relais: RelaisProcess;
  const sessions: Session[] = [];

  beforeAll(async () => {
    relais = await startRelais({
      config: {
        rate_limit: { emulation: { session: { burst: 3, per_second: 0.5 }, ip: { burst: 8, per_second: 0.5 } } },
        namespaces: { emu: { allow_subscribe: 'authenticated', allow_publish: 'authenticated', history_size: 100, history_ttl: '5m' } },
      },
    });
  });

  afterAll(async () => {
    for (const s of sessions) s.abort.abort();
    await relais?.stop();
  });

  async function post(s: Session, id: number): Promise<Response> {
    const data = JSON.stringify({ id, publish: { channel: 'emu:room', data: { id } } });
    return fetch(`${relais.httpUrl}/emulation`, { method: 'POST', body: JSON.stringify({ session: s.session, node: s.node, data }), headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(5000) });
  }

  it('refuses requests past the session and address limits with 429, runs every accepted command once, and serves the session again later', async () => {
    const a = await Session.open(relais, 'ann');
    const b = await Session.open(relais, 'ben');
    sessions.push(a, b);
    const statuses: Record<number, number> = {};
    for (let id = 10; id < 15; id++) statuses[id] = (await post(a, id)).status;
    expect(Object.values(statuses)).toEqual([204, 204, 204, 429, 429]);
    const refused = await post(a, 15);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({ error: { code: 111, message: 'too many emulation requests from this session (rate_limit.emulation)', temporary: true } });

    // Another session from the same address has its own session bucket, until the address's runs out (8 here, 6 spent).
    expect((await post(b, 20)).status).toBe(204);
    expect((await post(b, 21)).status).toBe(204);
    const byAddress = await post(b, 22);
    expect(byAddress.status).toBe(429);
    expect(((await byAddress.json()) as { error: { message: string } }).error.message).toContain('from this address');

    // Accepted commands: each answered once and published once; refused ones never ran.
    await waitFor(() => [10, 11, 12].every((id) => a.replies(id) === 1) && [20, 21].every((id) => b.replies(id) === 1), 5000, 'replies');
    await sleep(200);
    for (const id of [13, 14, 15]) expect(a.replies(id)).toBe(0);
    expect(b.replies(22)).toBe(0);
    const history = await relais.call('history', { channel: 'emu:room', limit: 100 });
    expect((history['publications'] as { data: { id: number } }[]).map((p) => p.data.id)).toEqual([10, 11, 12, 20, 21]);

    // Buckets refill: the session is served again.
    await sleep(2200);
    expect((await post(a, 30)).status).toBe(204);
    await waitFor(() => a.replies(30) === 1, 5000, 'reply 30');
  });
});
