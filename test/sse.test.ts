/**
 * The SSE endpoint against a real Relais process, with the `eventsource` npm client and a
 * raw HTTP reader: publications as JSON events, tokens and errors, Last-Event-ID resume of
 * every channel and glob of a stream (explicit and automatic), heartbeats, garbage ids.
 */
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sdkClient, sleep, waitFor, type SdkClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';
import { EventSourceClient, RawSseStream, type EventSourceClientOptions, type RawSseEvent, type SsePublication } from './helpers/sse.js';

let relais: RelaisProcess;
const ALLOWED_ORIGIN = 'http://app.example';
/** Streams and clients of the running test, closed after it whatever its outcome. */
const open: { close(): unknown }[] = [];

beforeAll(async () => {
  relais = await startRelais({
    config: {
      // One test holds a dozen streams of one user open at once.
      sse: { heartbeat_interval: '1s', max_streams_per_user: 20 },
      allowed_origins: [ALLOWED_ORIGIN],
      namespaces: {
        // History shorter than what a test publishes while a stream is away.
        small: { history_size: 5, history_ttl: '1h', allow_subscribe: 'authenticated', allow_wildcard: true },
        // No history: no offsets, nothing to resume.
        live: { allow_subscribe: 'authenticated' },
      },
    },
  });
});

afterEach(async () => {
  for (const item of open.splice(0)) await item.close();
});

afterAll(async () => {
  await relais.stop();
});

function sseUrl(channels: readonly string[], query: Record<string, string> = {}): string {
  const params = new URLSearchParams();
  for (const channel of channels) params.append('channel', channel);
  for (const [key, value] of Object.entries(query)) params.append(key, value);
  return `${relais.httpUrl}/sse?${params.toString()}`;
}

function eventSource(channels: readonly string[], options: EventSourceClientOptions & { query?: Record<string, string> } = {}): EventSourceClient {
  const client = new EventSourceClient(sseUrl(channels, options.query), options);
  open.push(client);
  return client;
}

async function raw(channels: readonly string[], headers: Record<string, string> = {}, query: Record<string, string> = {}): Promise<RawSseStream> {
  const stream = await RawSseStream.open(sseUrl(channels, query), headers);
  open.push(stream);
  return stream;
}

async function sdk(user: string): Promise<SdkClient> {
  const client = await sdkClient(relais, user);
  open.push(client);
  return client;
}

async function publish(channel: string, data: unknown): Promise<{ offset?: number; epoch?: string }> {
  return relais.call<{ offset?: number; epoch?: string }>('publish', { channel, data });
}

/** `n` of each publication, per channel, in arrival order. */
function byChannel(pubs: readonly SsePublication[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const p of pubs) (out[p.channel] ??= []).push((p.data as { n: number }).n);
  return out;
}

function offsetsByChannel(pubs: readonly SsePublication[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const p of pubs) (out[p.channel] ??= []).push(p.offset ?? 0);
  return out;
}

function named(events: readonly RawSseEvent[], type: string): Record<string, unknown>[] {
  return events.filter((e) => e.type === type).map((e) => JSON.parse(e.data) as Record<string, unknown>);
}

/** A token signed with the server's secret whose `exp` has passed. */
function expiredToken(user: string): Promise<string> {
  const exp = Math.floor(Date.now() / 1000) - 60;
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(user).setExpirationTime(exp).sign(new TextEncoder().encode(relais.secret));
}

async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: unknown }> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
  const type = response.headers.get('content-type') ?? '';
  // A stream that opened would never end: read the body only for error answers.
  if (response.status === 200) {
    await response.body?.cancel();
    return { status: 200, type, body: undefined };
  }
  return { status: response.status, type, body: await response.json() };
}

describe('SSE endpoint', () => {
  it('streams the publications of two channels in order, as JSON events, with headers that keep proxies from buffering', async () => {
    const token = await relais.token('reader');
    const [a, b] = ['chat:s1-a', 'chat:s1-b'] as const;
    const es = eventSource([a, b], { token });
    const subscribed = await es.waitForNamed('subscribed', 2);
    expect(subscribed.map((s) => s['channel']).sort()).toEqual([a, b]);

    const headers = es.attempts[0]?.responseHeaders;
    expect(headers?.get('content-type')).toMatch(/^text\/event-stream/);
    expect(headers?.get('cache-control')).toBe('no-cache, no-transform');
    expect(headers?.get('x-accel-buffering')).toBe('no');

    const sent: { channel: string; n: number; offset: number | undefined; epoch: string | undefined }[] = [];
    for (let n = 0; n < 10; n++) {
      const channel = n % 3 === 0 ? b : a;
      const result = await publish(channel, { n });
      sent.push({ channel, n, offset: result.offset, epoch: result.epoch });
    }
    // A publication from a connected client carries its publisher's info.
    const writer = await sdk('writer');
    await writer.centrifuge.publish(a, { n: 10 });

    const pubs = await es.waitForPublications(11);
    await sleep(200);
    expect(es.publications()).toHaveLength(11);
    expect(pubs.slice(0, 10).map((p) => ({ channel: p.channel, n: (p.data as { n: number }).n, offset: p.offset, epoch: p.epoch }))).toEqual(sent);
    expect(offsetsByChannel(pubs)).toEqual({ [a]: [1, 2, 3, 4, 5, 6, 7], [b]: [1, 2, 3, 4] });
    for (const p of pubs.slice(0, 10)) {
      expect(Object.keys(p)).toEqual(['channel', 'offset', 'epoch', 'data', 'time']);
      expect(Math.abs(p.time - Date.now())).toBeLessThan(60_000);
    }
    expect(pubs[10]).toMatchObject({ channel: a, offset: 7, data: { n: 10 }, info: { user: 'writer' } });
    expect(typeof pubs[10]?.info?.client).toBe('string');
    expect(es.errors).toEqual([]);
  });

  it('takes the token from Authorization: Bearer or ?token=, and answers refused streams with JSON errors', async () => {
    const token = await relais.token('alice');
    const viaQuery = eventSource(['chat:s2', 'user:alice'], { query: { token } });
    await viaQuery.waitForNamed('subscribed', 2);
    await publish('@alice', { n: 1 });
    expect((await viaQuery.waitForPublications(1))[0]).toMatchObject({ channel: 'user:alice', data: { n: 1 } });

    const bearer = { authorization: `Bearer ${token}` };
    const cases: [string, string, Record<string, string>, number, number][] = [
      ['no token', sseUrl(['chat:s2']), {}, 401, 101],
      ['a forged token', sseUrl(['chat:s2']), { authorization: `Bearer ${token.slice(0, -4)}AAAA` }, 401, 101],
      ['an expired token', sseUrl(['chat:s2'], { token: await expiredToken('alice') }), {}, 401, 109],
      ["another user's personal channel", sseUrl(['user:someone-else']), bearer, 403, 103],
      ['a glob where the namespace allows none', sseUrl(['user:*']), bearer, 403, 103],
      ['an invalid channel name', sseUrl(['chat:bad name']), bearer, 400, 107],
      ['an empty name after the namespace', sseUrl(['chat:']), bearer, 400, 107],
      ['no channel', sseUrl([]), bearer, 400, 107],
      ['an unknown namespace', sseUrl(['nope:x']), bearer, 404, 102],
      ['more channels than sse.max_channels', sseUrl(Array.from({ length: 65 }, (_, i) => `chat:many-${i}`)), bearer, 413, 106],
    ];
    for (const [what, url, headers, status, code] of cases) {
      const reply = await getJson(url, headers);
      const error = (reply.body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      expect({ what, status: reply.status, type: reply.type, code: error?.code, message: typeof error?.message }).toEqual({
        what,
        status,
        type: expect.stringMatching(/^application\/json/) as unknown,
        code,
        message: 'string',
      });
    }

    // EventSource gives up on a refused stream (no reconnect loop) and says why.
    const refused = eventSource(['chat:s2']);
    await waitFor(() => refused.errors.length > 0, 10_000, 'EventSource error');
    expect(refused.errors[0]?.code).toBe(401);
    expect(refused.source.readyState).toBe(refused.source.CLOSED);
  });

  it('takes each channel parameter as one name, commas included', async () => {
    const token = await relais.token('comma');
    const stream = await raw(['chat:c1,c2', 'chat:c3'], { authorization: `Bearer ${token}` });
    await stream.waitFor((s) => named(s.events, 'subscribed').length >= 2, 10_000, 'subscribed');
    await sleep(100);
    expect(named(stream.events, 'subscribed').map((s) => s['channel'])).toEqual(['chat:c1,c2', 'chat:c3']);
    await publish('chat:c1,c2', { n: 1 });
    await publish('c2', { n: 2 });
    await publish('chat:c3', { n: 3 });
    await stream.waitForPublications(2);
    await sleep(100);
    expect(byChannel(stream.publications())).toEqual({ 'chat:c1,c2': [1], 'chat:c3': [3] });
  });

  it('checks the Origin of browsers against allowed_origins', async () => {
    const token = await relais.token('origin-check');
    const headers = { authorization: `Bearer ${token}` };
    const refused = await getJson(sseUrl(['chat:s3']), { ...headers, origin: 'http://evil.example' });
    expect(refused.status).toBe(403);
    expect((refused.body as { error: { code: number } }).error.code).toBe(103);

    const allowed = await raw(['chat:s3'], { ...headers, origin: ALLOWED_ORIGIN });
    expect(allowed.status).toBe(200);
    // Without it a browser EventSource on the app's origin cannot read the stream.
    expect(allowed.response.headers.get('access-control-allow-origin')).toBe(ALLOWED_ORIGIN);
    await allowed.waitFor((s) => named(s.events, 'subscribed').length === 1, 10_000, 'subscribed');
  });

  it('resumes every channel through Last-Event-ID on a new connection: each missed publication once, in order, then live', async () => {
    const token = await relais.token('resumer');
    const [a, b] = ['chat:r1-a', 'chat:r1-b'] as const;
    const first = eventSource([a, b], { token });
    await first.waitForNamed('subscribed', 2);
    for (let n = 0; n < 4; n++) await publish(n % 2 ? b : a, { n });
    await first.waitForPublications(4);
    const lastId = first.lastEventId;
    first.close();

    for (let n = 4; n < 10; n++) await publish(n % 2 ? b : a, { n });
    const second = eventSource([a, b], { token, firstHeaders: { 'Last-Event-ID': lastId } });
    const subscribed = await second.waitForNamed('subscribed', 2);
    expect(subscribed.map((s) => [s['channel'], s['was_recovering'], s['recovered']]).sort()).toEqual([
      [a, true, true],
      [b, true, true],
    ]);
    await second.waitForPublications(6);
    for (let n = 10; n < 12; n++) await publish(n % 2 ? b : a, { n });
    await second.waitForPublications(8);
    await sleep(200);

    const pubs = second.publications();
    expect(pubs).toHaveLength(8);
    expect(byChannel(pubs)).toEqual({ [a]: [4, 6, 8, 10], [b]: [5, 7, 9, 11] });
    expect(offsetsByChannel(pubs)).toEqual({ [a]: [3, 4, 5, 6], [b]: [3, 4, 5, 6] });
    // The live ones come after the whole replay.
    expect(pubs.slice(6).map((p) => (p.data as { n: number }).n)).toEqual([10, 11]);
  });

  it('resumes automatically when the server ends the stream at token expiry: the EventSource reconnects with Last-Event-ID', async () => {
    const [a, b] = ['chat:r2-a', 'chat:r2-b'] as const;
    // A fresh token on every connection, as an app's fetch hook would get one; the first is short-lived.
    let minted = 0;
    const es = eventSource([a, b], { token: () => relais.token('expiring', { ttlSeconds: minted++ === 0 ? 3 : 600 }) });
    await es.waitForNamed('subscribed', 2);
    await publish(a, { n: 0 });
    await publish(b, { n: 1 });
    await es.waitForPublications(2);
    const idBeforeCut = es.lastEventId;

    await waitFor(() => es.errors.length > 0, 10_000, 'the server ending the stream when its token expires');
    expect(es.named('expired')).toEqual([{ reason: 'token expired' }]);
    const opensAtCut = es.opens;
    for (let n = 2; n < 6; n++) await publish(n % 2 ? b : a, { n });
    await es.waitForPublications(6);
    expect(es.opens).toBe(opensAtCut + 1);
    expect(es.attempts[1]?.headers['Last-Event-ID']).toBe(idBeforeCut);
    const resubscribed = (await es.waitForNamed('subscribed', 4)).slice(2);
    expect(resubscribed.map((s) => [s['was_recovering'], s['recovered']])).toEqual([
      [true, true],
      [true, true],
    ]);
    for (let n = 6; n < 8; n++) await publish(n % 2 ? b : a, { n });
    await es.waitForPublications(8);
    await sleep(200);
    expect(byChannel(es.publications())).toEqual({ [a]: [0, 2, 4, 6], [b]: [1, 3, 5, 7] });
  });

  it('streams a glob over several channels and resumes it with nothing missed or repeated, new channels included', async () => {
    const token = await relais.token('globber');
    const pattern = 'chat:g1.*';
    await publish('chat:g1.old', { n: -1 });
    await sleep(30);
    const first = eventSource([pattern], { token });
    expect((await first.waitForNamed('subscribed', 1))[0]).toEqual({ pattern, was_recovering: false });
    await publish('chat:g1.a', { n: 0 });
    await publish('chat:g2.a', { n: 100 });
    await publish('chat:g1.b', { n: 1 });
    await publish('chat:g1.a', { n: 2 });
    await first.waitForPublications(3);
    const lastId = first.lastEventId;
    first.close();

    // While away: known channels, and chat:g1.c, which had no event before the disconnect.
    await publish('chat:g1.c', { n: 3 });
    await publish('chat:g1.a', { n: 4 });
    await publish('chat:g1.b', { n: 5 });
    await publish('chat:g1.c', { n: 6 });
    const second = eventSource([pattern], { token, firstHeaders: { 'Last-Event-ID': lastId } });
    expect((await second.waitForNamed('subscribed', 1))[0]).toEqual({ pattern, was_recovering: true });
    await second.waitForPublications(4);
    await publish('chat:g1.d', { n: 7 });
    await publish('chat:g1.a', { n: 8 });
    await second.waitForPublications(6);
    await sleep(200);

    expect(byChannel(first.publications())).toEqual({ 'chat:g1.a': [0, 2], 'chat:g1.b': [1] });
    const pubs = second.publications();
    expect(pubs).toHaveLength(6);
    expect(byChannel(pubs)).toEqual({ 'chat:g1.a': [4, 8], 'chat:g1.b': [5], 'chat:g1.c': [3, 6], 'chat:g1.d': [7] });
    expect(second.named('unrecovered')).toEqual([]);
  });

  it('resumes a glob automatically after the server ends the stream', async () => {
    const pattern = 'chat:g3.*';
    let minted = 0;
    const es = eventSource([pattern], { token: () => relais.token('glob-expiring', { ttlSeconds: minted++ === 0 ? 3 : 600 }) });
    await es.waitForNamed('subscribed', 1);
    await publish('chat:g3.a', { n: 0 });
    await es.waitForPublications(1);
    await waitFor(() => es.errors.length > 0, 10_000, 'the server ending the stream when its token expires');
    await publish('chat:g3.a', { n: 1 });
    await publish('chat:g3.new', { n: 2 });
    await es.waitForPublications(3);
    await publish('chat:g3.b', { n: 3 });
    await es.waitForPublications(4);
    await sleep(200);
    expect(es.opens).toBe(2);
    expect((await es.waitForNamed('subscribed', 2))[1]).toEqual({ pattern, was_recovering: true });
    expect(byChannel(es.publications())).toEqual({ 'chat:g3.a': [0, 1], 'chat:g3.new': [2], 'chat:g3.b': [3] });
  });

  it('replays nothing and says so when history no longer covers a channel, exact or glob', async () => {
    const token = await relais.token('late');
    const channels = ['small:u1', 'small:ug.*'];
    const first = eventSource(channels, { token });
    await first.waitForNamed('subscribed', 2);
    await publish('small:u1', { n: 0 });
    await publish('small:ug.a', { n: 0 });
    await first.waitForPublications(2);
    const lastId = first.lastEventId;
    first.close();

    // History keeps 5: eight missed publications cannot all be replayed.
    for (let n = 1; n <= 8; n++) {
      await publish('small:u1', { n });
      await publish('small:ug.a', { n });
    }
    const second = eventSource(channels, { token, firstHeaders: { 'Last-Event-ID': lastId } });
    const subscribed = await second.waitForNamed('subscribed', 2);
    expect(subscribed.find((s) => s['channel'] === 'small:u1')).toMatchObject({ offset: 9, was_recovering: true, recovered: false });
    expect(await second.waitForNamed('unrecovered', 1)).toEqual([{ channel: 'small:ug.a', reason: expect.any(String) as unknown }]);
    await publish('small:u1', { n: 9 });
    await publish('small:ug.a', { n: 9 });
    await second.waitForPublications(2);
    await sleep(200);
    // Never a partial replay: only what came after the resume.
    expect(offsetsByChannel(second.publications())).toEqual({ 'small:u1': [10], 'small:ug.a': [10] });
  });

  it('resumes from any event id of a resumed stream with nothing missed or repeated', async () => {
    const token = await relais.token('any-id');
    const auth = { authorization: `Bearer ${token}` };
    const channels = ['chat:q1', 'chat:q2', 'chat:qg.*'];
    const s1 = await raw(channels, auth);
    await s1.waitFor((s) => named(s.events, 'subscribed').length === 3, 10_000, 'first stream subscribed');
    await publish('chat:q1', { n: 0 });
    await publish('chat:q2', { n: 1 });
    await publish('chat:qg.a', { n: 2 });
    await s1.waitForPublications(3);
    const id0 = s1.events.at(-1)?.id ?? '';
    await s1.close();

    let n = 3;
    for (const channel of ['chat:q1', 'chat:q2', 'chat:qg.a', 'chat:qg.b', 'chat:q1', 'chat:q2', 'chat:qg.a', 'chat:qg.b']) {
      await publish(channel, { n: n++ });
    }
    const s2 = await raw(channels, { ...auth, 'last-event-id': id0 });
    await s2.waitFor((s) => named(s.events, 'subscribed').length === 3 && s.publications().length === 8, 10_000, 'resumed stream');
    await s2.close();
    expect(byChannel(s2.publications())).toEqual({ 'chat:q1': [3, 7], 'chat:q2': [4, 8], 'chat:qg.a': [5, 9], 'chat:qg.b': [6, 10] });

    // Whichever event a client saw last, a stream resumed from its id delivers exactly the rest.
    for (let i = 0; i < s2.events.length; i++) {
      const id = s2.events[i]?.id;
      expect(id, `event ${i} has an id`).toBeDefined();
      const rest = s2.events
        .slice(i + 1)
        .filter((e) => e.type === 'message')
        .map((e) => JSON.parse(e.data) as SsePublication);
      const s3 = await raw(channels, { ...auth, 'last-event-id': id ?? '' });
      // Each channel's replay is written with or before its `subscribed` event.
      await s3.waitFor((s) => named(s.events, 'subscribed').length === 3, 10_000, `stream resumed from event ${i}`);
      await sleep(50);
      await s3.close();
      expect({ from: i, pubs: byChannel(s3.publications()) }).toEqual({ from: i, pubs: byChannel(rest) });
    }
  });

  it('sends heartbeat comments on an idle stream', async () => {
    const token = await relais.token('idle');
    const stream = await raw(['live:quiet'], { authorization: `Bearer ${token}` });
    await stream.waitFor((s) => s.comments.filter((c) => c === 'ping').length >= 2, 10_000, 'two ping comments');
    expect(stream.text).toMatch(/^: relais\nretry: \d+\n\n/);
    expect(stream.text).toContain('\n: ping\n\n');
    expect(stream.events.filter((e) => e.type === 'message')).toEqual([]);
  });

  it('starts fresh on a garbage Last-Event-ID, and the ids it then sends resume correctly', async () => {
    const token = await relais.token('garbage');
    const auth = { authorization: `Bearer ${token}` };
    const channels = ['chat:gb.x', 'chat:gbg.*'];
    const top = await publish('chat:gb.x', { n: 0 });
    const garbage = [
      'garbage',
      '1;notatime;',
      '1;1700000000000;chat%3Agb.x=abc.notanumber',
      '1;1700000000000;chat%3Agb.x',
      '2;1700000000000;',
      '1;1;%E0%A4%A=x.1',
      '\u00ff\u00fe',
      'x'.repeat(9000),
      // Well-formed, but naming a channel that cannot exist, in the glob.
      '1;0;chat%3Agbg.a%20b=e.1',
      // Well-formed, with a position past the channel's top.
      `1;${Date.now()};chat%3Agb.x=${encodeURIComponent(top.epoch ?? '')}.999`,
      // Well-formed, from the far future.
      '1;4000000000000;',
    ];
    const streams: RawSseStream[] = [];
    for (const id of garbage) {
      const stream = await raw(channels, { ...auth, 'last-event-id': id });
      expect(stream.status).toBe(200);
      await stream.waitFor((s) => named(s.events, 'subscribed').length === 2, 10_000, `subscribed after Last-Event-ID ${id.slice(0, 40)}`);
      expect(named(stream.events, 'error')).toEqual([]);
      streams.push(stream);
    }
    await publish('chat:gb.x', { n: 1 });
    await publish('chat:gbg.y', { n: 2 });
    for (const stream of streams) {
      await stream.waitForPublications(2);
      expect(byChannel(stream.publications())).toEqual({ 'chat:gb.x': [1], 'chat:gbg.y': [2] });
      expect(Number(stream.events.at(-1)?.id?.split(';')[1])).toBeLessThanOrEqual(Date.now());
    }
    const health = await fetch(`${relais.httpUrl}/healthz`, { signal: AbortSignal.timeout(5000) });
    expect(health.status).toBe(200);

    // The ids such a stream sends are good ones.
    const last = streams[0]?.events.at(-1)?.id ?? '';
    for (const stream of streams) await stream.close();
    await publish('chat:gb.x', { n: 3 });
    await publish('chat:gbg.z', { n: 4 });
    const resumed = await raw(channels, auth, { last_event_id: last });
    await resumed.waitFor((s) => named(s.events, 'subscribed').length === 2 && s.publications().length >= 2, 10_000, 'resume');
    await sleep(100);
    expect(byChannel(resumed.publications())).toEqual({ 'chat:gb.x': [3], 'chat:gbg.z': [4] });
  });

  it('counts streams in info and lets the server API send to and disconnect them', async () => {
    const token = await relais.token('kiosk');
    const stream = await raw(['chat:kiosk'], { authorization: `Bearer ${token}` });
    await stream.waitFor((st) => named(st.events, 'subscribed').length === 1, 10_000, 'subscribed');
    const info = await relais.call<{ nodes: { num_clients: number; num_users: number }[] }>('info', {});
    expect(info.nodes[0]?.num_clients).toBeGreaterThanOrEqual(1);
    await relais.call('send', { user: 'kiosk', data: { note: 'hello kiosk' } });
    await stream.waitFor((st) => st.events.some((e) => e.type === 'send'), 10_000, 'send event');
    expect(JSON.parse(stream.events.find((e) => e.type === 'send')?.data ?? 'null')).toEqual({ note: 'hello kiosk' });
    await relais.call('disconnect', { user: 'kiosk' });
    await stream.waitFor((st) => st.ended, 10_000, 'stream ended');
    expect(named(stream.events, 'disconnect')).toEqual([{ code: 3503, reason: 'force disconnect' }]);
  });
});
