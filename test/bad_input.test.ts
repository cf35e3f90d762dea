/**
 * Bad input on the WebSocket protocol: each gets its documented error or disconnect code,
 * the offender's other subscriptions keep working, every other connection keeps working,
 * and no accepted publication is lost. A witness subscriber receives a steady stream of
 * publications during the whole file and must get all of them, in order.
 */
import { SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, sdkClient, waitFor, type SdkClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

let relais: RelaisProcess;
let witness: SdkClient;
let published = 0;
let stopPublishing = false;
let publisher: Promise<void>;

beforeAll(async () => {
  relais = await startRelais({ config: { client: { max_frame_bytes: 4096, max_publication_bytes: 1024 } } });
  witness = await sdkClient(relais, 'witness');
  await witness.subscribe('chat:witness').ready(5000);
  publisher = (async () => {
    while (!stopPublishing) {
      await relais.call('publish', { channel: 'chat:witness', data: { n: published + 1 } });
      published++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
});

afterAll(async () => {
  stopPublishing = true;
  await publisher;
  witness.close();
  await relais.stop();
});

/** A raw client connected as `user`, subscribed to `chat:<user>-own` to check its subscriptions survive. */
async function connected(user: string): Promise<RawClient> {
  const raw = await RawClient.open(relais);
  const reply = await raw.connect(await relais.token(user));
  expect(reply['connect']).toBeDefined();
  raw.sendCommands({ id: 2, subscribe: { channel: `chat:${user}-own` } });
  expect((await raw.reply(2))['subscribe']).toBeDefined();
  return raw;
}

/** The raw client's own subscription still delivers. */
async function stillServed(raw: RawClient, user: string): Promise<void> {
  const before = raw.pushes('pub', `chat:${user}-own`).length;
  await relais.call('publish', { channel: `chat:${user}-own`, data: { alive: true } });
  await waitFor(() => raw.pushes('pub', `chat:${user}-own`).length === before + 1, 5000, 'own subscription still delivers');
}

function errorOf(reply: Record<string, unknown>): { code: number; message: string; temporary?: boolean } {
  return reply['error'] as { code: number; message: string; temporary?: boolean };
}

describe('bad input on the client protocol', () => {
  it('malformed JSON: disconnect 3501 (bad request)', async () => {
    const raw = await connected('mallory1');
    raw.send('{"id":3,"publish":{"channel":');
    expect(await raw.closed()).toEqual({ code: 3501, reason: 'bad request' });
  });

  it('unknown command: error 104, the connection stays', async () => {
    const raw = await connected('mallory2');
    raw.sendCommands({ id: 3, teleport: { to: 'mars' } });
    expect(errorOf(await raw.reply(3)).code).toBe(104);
    await stillServed(raw, 'mallory2');
    raw.close();
  });

  it('wrong field types: error 107, the connection stays', async () => {
    const raw = await connected('mallory3');
    raw.sendCommands(
      { id: 3, subscribe: { channel: 42 } },
      { id: 4, publish: { channel: 'chat:x' } },
      { id: 5, history: { channel: 'chat:x', limit: 'all' } },
      { id: 6, subscribe: 'chat:x' },
    );
    for (const id of [3, 4, 5, 6]) expect(errorOf(await raw.reply(id)).code).toBe(107);
    await stillServed(raw, 'mallory3');
    raw.close();
  });

  it('invalid channel names: error 107, unknown namespace: error 102', async () => {
    const raw = await connected('mallory4');
    raw.sendCommands(
      { id: 3, subscribe: { channel: "chat:x'; DROP TABLE users;--" } },
      { id: 4, subscribe: { channel: 'chat:*' } },
      { id: 5, subscribe: { channel: 'x'.repeat(300) } },
      { id: 6, subscribe: { channel: 'nowhere:room' } },
      { id: 7, publish: { channel: 'chat:a b', data: 1 } },
    );
    for (const id of [3, 4, 5, 7]) expect(errorOf(await raw.reply(id)).code).toBe(107);
    expect(errorOf(await raw.reply(6)).code).toBe(102);
    await stillServed(raw, 'mallory4');
    raw.close();
  });

  it('commands before connect: disconnect 3501', async () => {
    const raw = await RawClient.open(relais);
    raw.sendCommands({ id: 1, subscribe: { channel: 'chat:witness' } });
    expect((await raw.closed()).code).toBe(3501);
  });

  it('a frame over the size limit: close 1009, the client does not reconnect', async () => {
    const raw = await connected('mallory5');
    raw.send(JSON.stringify({ id: 3, publish: { channel: 'chat:x', data: 'x'.repeat(5000) } }));
    expect((await raw.closed()).code).toBe(1009);
  });

  it('publication data over its limit: error 106, the connection stays', async () => {
    const raw = await connected('mallory6');
    raw.sendCommands({ id: 3, publish: { channel: 'chat:x', data: 'x'.repeat(2000) } });
    expect(errorOf(await raw.reply(3)).code).toBe(106);
    await stillServed(raw, 'mallory6');
    raw.close();
  });

  it('an expired token: error 109 so that the client fetches a new one', async () => {
    const raw = await RawClient.open(relais);
    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('late')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(relais.secret));
    expect(errorOf(await raw.connect(expired)).code).toBe(109);
    raw.close();
  });

  it('forged tokens (wrong secret, alg none, garbage): disconnect 3500 (invalid token)', async () => {
    const wrongSecret = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('admin').sign(new TextEncoder().encode('not-the-secret-0123456789'));
    const unsigned = new UnsecuredJWT({}).setSubject('admin').encode();
    for (const token of [wrongSecret, unsigned, 'garbage.token.here']) {
      const raw = await RawClient.open(relais);
      raw.sendCommands({ id: 1, connect: { token } });
      expect((await raw.closed()).code, token).toBe(3500);
    }
  });

  it('no token where anonymous connections are off: error 101', async () => {
    const raw = await RawClient.open(relais);
    raw.sendCommands({ id: 1, connect: {} });
    expect(errorOf(await raw.reply(1)).code).toBe(101);
    raw.close();
  });

  it("subscribing to a forbidden channel (someone else's personal channel): error 103, the connection stays", async () => {
    const raw = await connected('mallory7');
    raw.sendCommands({ id: 3, subscribe: { channel: 'user:witness' } });
    expect(errorOf(await raw.reply(3)).code).toBe(103);
    raw.sendCommands({ id: 4, subscribe: { channel: 'chat:mallory7-own' } });
    expect(errorOf(await raw.reply(4)).code).toBe(105);
    await stillServed(raw, 'mallory7');
    raw.close();
  });

  it('lost nothing: the witness received every accepted publication once, in order', async () => {
    await new Promise((r) => setTimeout(r, 200));
    stopPublishing = true;
    await publisher;
    await waitFor(() => witness.pubs('chat:witness').length >= published, 10_000, 'witness caught up');
    const values = witness.pubs('chat:witness').map((p) => (p.data as { n: number }).n);
    expect(published).toBeGreaterThan(20);
    expect(values).toEqual(Array.from({ length: published }, (_, i) => i + 1));
  });
});
