/**
 * Per-connection limits, each against a real server process: the connection and user rate
 * limits (refusal 111 temporary, the connection stays; sustained abuse ends it with 3013),
 * subscriptions per connection, channel name length, history page and presence answer size.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient, sleep } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

let relais: RelaisProcess;

const CONNECTION_BURST = 5;
const USER_BURST = 8;
const DISCONNECT_AFTER = 20;

beforeAll(async () => {
  relais = await startRelais({
    config: {
      rate_limit: {
        connection: { burst: CONNECTION_BURST, per_second: 2 },
        // Slow enough that no user token comes back between two bursts of one test.
        user: { burst: USER_BURST, per_second: 0.5 },
        disconnect_after: DISCONNECT_AFTER,
      },
      client: { max_channels_per_connection: 3, channel_max_length: 32, history_max_limit: 5, presence_max_size: 2 },
    },
  });
});

afterAll(async () => {
  await relais.stop();
});

async function connected(user: string): Promise<RawClient> {
  const raw = await RawClient.open(relais);
  expect((await raw.connect(await relais.token(user)))['connect']).toBeDefined();
  return raw;
}

/** Sends publishes with ids from..from+count-1 in one frame and returns their replies in order. */
async function publishBurst(raw: RawClient, channel: string, from: number, count: number): Promise<Record<string, unknown>[]> {
  const ids = Array.from({ length: count }, (_, i) => from + i);
  raw.sendCommands(...ids.map((id) => ({ id, publish: { channel, data: { id } } })));
  return Promise.all(ids.map((id) => raw.reply(id)));
}

const refusedWith111 = (reply: Record<string, unknown>): boolean =>
  (reply['error'] as { code?: number; temporary?: boolean } | undefined)?.code === 111 &&
  (reply['error'] as { temporary?: boolean }).temporary === true;

describe('client limits', () => {
  it('refuses commands past the connection bucket with 111 temporary; the connection stays and is served once the bucket refills', async () => {
    const raw = await connected('rate-conn');
    const replies = await publishBurst(raw, 'chat:rate-conn', 2, CONNECTION_BURST + 2);
    expect(replies.slice(0, CONNECTION_BURST).map((r) => r['publish'])).toEqual(Array(CONNECTION_BURST).fill({}));
    expect(replies.slice(CONNECTION_BURST).every(refusedWith111)).toBe(true);
    await sleep(1200); // 2 tokens a second
    expect((await publishBurst(raw, 'chat:rate-conn', 100, 1))[0]?.['publish']).toEqual({});
    expect(raw.closeCode).toBeUndefined();
    raw.close();
  });

  it("shares a user's bucket between the user's connections", async () => {
    const first = await connected('rate-user');
    const second = await connected('rate-user');
    const a = await publishBurst(first, 'chat:rate-user', 2, CONNECTION_BURST);
    expect(a.every((r) => r['publish'] !== undefined)).toBe(true);
    // The second connection's own bucket is full; the user's has USER_BURST - 5 left.
    const b = await publishBurst(second, 'chat:rate-user', 2, CONNECTION_BURST);
    expect(b.filter((r) => r['publish'] !== undefined).length).toBe(USER_BURST - CONNECTION_BURST);
    expect(b.filter(refusedWith111).length).toBe(2 * CONNECTION_BURST - USER_BURST);
    first.close();
    second.close();
  });

  it('ends sustained abuse with disconnect 3013 after disconnect_after refusals in a row; others are unaffected', async () => {
    const witness = await connected('rate-witness');
    const abuser = await connected('rate-abuser');
    const count = CONNECTION_BURST + DISCONNECT_AFTER + 5;
    abuser.sendCommands(...Array.from({ length: count }, (_, i) => ({ id: i + 2, publish: { channel: 'chat:abuse', data: i } })));
    expect(await abuser.closed()).toEqual({ code: 3013, reason: 'too many requests' });
    const refused = abuser.messages.filter(refusedWith111).length;
    expect(refused).toBe(DISCONNECT_AFTER);
    expect((await publishBurst(witness, 'chat:abuse', 2, 1))[0]?.['publish']).toEqual({});
    witness.close();
  });

  it('refuses a subscription past max_channels_per_connection with 106; the others keep working', async () => {
    const raw = await connected('many-subs');
    raw.sendCommands(...[2, 3, 4, 5].map((id) => ({ id, subscribe: { channel: `chat:subs-${id}` } })));
    const replies = await Promise.all([2, 3, 4, 5].map((id) => raw.reply(id)));
    expect(replies.slice(0, 3).every((r) => r['subscribe'] !== undefined)).toBe(true);
    expect(replies[3]?.['error']).toMatchObject({ code: 106 });
    expect((await relais.api('publish', { channel: 'chat:subs-2', data: { n: 1 } })).status).toBe(200);
    await expect.poll(() => raw.pushes('pub', 'chat:subs-2').length).toBe(1);
    raw.close();
  });

  it('accepts a channel name of exactly channel_max_length and refuses one character more with 107', async () => {
    const raw = await connected('long-names');
    const atLimit = `chat:${'a'.repeat(32 - 'chat:'.length)}`;
    raw.sendCommands({ id: 2, subscribe: { channel: atLimit } }, { id: 3, subscribe: { channel: `${atLimit}b` } });
    expect((await raw.reply(2))['subscribe']).toBeDefined();
    expect((await raw.reply(3))['error']).toMatchObject({ code: 107 });
    raw.close();
  });

  it('caps a history page at history_max_limit', async () => {
    for (let i = 1; i <= 8; i++) expect((await relais.api('publish', { channel: 'chat:pages', data: { i } })).status).toBe(200);
    const raw = await connected('reader');
    raw.sendCommands({ id: 2, history: { channel: 'chat:pages', limit: 100 } }, { id: 3, history: { channel: 'chat:pages', limit: -1 } });
    for (const id of [2, 3]) {
      const page = (await raw.reply(id))['history'] as { publications: { offset: number }[]; offset: number };
      expect(page.publications.map((p) => p.offset)).toEqual([1, 2, 3, 4, 5]);
      expect(page.offset).toBe(8);
    }
    raw.close();
  });

  it('refuses a presence answer larger than presence_max_size with 106; presence_stats still counts', async () => {
    const members = await Promise.all(['p1', 'p2', 'p3'].map((u) => connected(u)));
    for (const m of members) {
      m.sendCommands({ id: 2, subscribe: { channel: 'chat:crowd' } });
      expect((await m.reply(2))['subscribe']).toBeDefined();
    }
    const [asker] = members;
    asker?.sendCommands({ id: 3, presence: { channel: 'chat:crowd' } }, { id: 4, presence_stats: { channel: 'chat:crowd' } });
    expect((await asker?.reply(3))?.['error']).toMatchObject({ code: 106 });
    expect((await asker?.reply(4))?.['presence_stats']).toEqual({ num_clients: 3, num_users: 3 });
    for (const m of members) m.close();
  });
});
