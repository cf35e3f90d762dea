/**
 * Blocking users and revoking tokens across three Relais instances sharing the machine's
 * PostgreSQL (a fresh schema) and Redis (a unique prefix). A blocked user is disconnected on
 * every instance within a second and refused when reconnecting; a revoked token (by id, or
 * issued before a time) is refused on every instance, also by an instance started after the
 * revocation; a token issued afterwards works. Subscription tokens of a user for one channel
 * (invalidate_user_tokens with `channel`) likewise, on two instances. Under CI=true a missing service fails the suite.
 */
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { describeWithBus } from './helpers/buses.js';
import { RawClient, sleep, waitFor } from './helpers/clients.js';
import { report } from './helpers/cluster.js';
import type { RelaisProcess } from './helpers/relais.js';
import { sharedStoreMissing, sharedStoreSuite } from './helpers/shared_store.js';

describeWithBus('blocking users and revoking tokens across three instances (PostgreSQL, Redis)', await sharedStoreMissing(), () => {
  const suite = sharedStoreSuite('access');
  const run = suite.run;

  async function trio(): Promise<{ env: Record<string, string>; nodes: RelaisProcess[] }> {
    const env = await suite.env(`-${randomBytes(4).toString('hex')}`);
    return { env, nodes: await Promise.all([suite.instance(env), suite.instance(env), suite.instance(env)]) };
  }

  /** A raw connection with `token`; resolves with it once connected, or with the close code of a refusal. */
  async function connect(relais: RelaisProcess, token: string): Promise<RawClient | number> {
    const client = run.on(await RawClient.open(relais), (c) => c.close());
    const reply = await Promise.race([client.connect(token), client.closed().then(() => undefined)]);
    if (reply && reply['connect']) return client;
    return (await client.closed()).code ?? -1;
  }

  async function connected(relais: RelaisProcess, token: string): Promise<RawClient> {
    const result = await connect(relais, token);
    if (typeof result === 'number') throw new Error(`connection refused with ${result}`);
    return result;
  }

  it('a blocked user is disconnected everywhere within a second and refused until unblocked, also after a restart', async () => {
    const { env, nodes } = await trio();
    const [a, b, c] = nodes as [RelaisProcess, RelaisProcess, RelaisProcess];
    const token = await a.token('mallory');
    const sessions = await Promise.all(nodes.map((n) => connected(n, token)));
    const bystander = await connected(c, await c.token('alice'));
    const started = Date.now();
    await b.call('block_user', { user: 'mallory', expire_at: Math.floor(Date.now() / 1000) + 3600 });
    const closes = await Promise.all(sessions.map(async (s) => ({ ...(await s.closed(1000)), ms: Date.now() - started })));
    expect(closes.map((x) => [x.code, x.reason])).toEqual(nodes.map(() => [3503, 'user blocked']));
    expect(bystander.closeCode).toBeUndefined();
    for (const n of nodes) expect(await connect(n, await n.token('mallory'))).toBe(3503);

    // A fresh instance (and one restarted after kill -9) loads the block from the store.
    await a.kill9();
    const restarted = await suite.instance(env);
    expect(await connect(restarted, token)).toBe(3503);

    await c.call('unblock_user', { user: 'mallory' });
    for (const n of [restarted, b, c]) await connected(n, token);
    report('redis', 'block_user', { instances: 3, disconnectedWithinMs: Math.max(...closes.map((x) => x.ms)) });
  });

  it('a revoked token is refused everywhere, also after a restart; a token issued after the revocation works', async () => {
    const { env, nodes } = await trio();
    const [a, b, c] = nodes as [RelaisProcess, RelaisProcess, RelaisProcess];
    const now = Math.floor(Date.now() / 1000);
    const revoked = await a.token('bob', { tokenId: 'bob-phone' });
    const other = await a.token('bob', { tokenId: 'bob-laptop' });
    const phone = await connected(b, revoked);
    const laptop = await connected(b, other);
    await c.call('revoke_token', { uid: 'bob-phone', expire_at: now + 3600 });
    expect(await phone.closed(1000)).toEqual({ code: 3500, reason: 'token revoked' });
    expect(laptop.closeCode).toBeUndefined();
    for (const n of nodes) expect(await connect(n, revoked)).toBe(3500);

    const oldToken = await a.token('carol', { issuedAt: now - 60 });
    const old = await connected(a, oldToken);
    await b.call('invalidate_user_tokens', { user: 'carol', issued_before: now, expire_at: now + 3600 });
    expect(await old.closed(1000)).toEqual({ code: 3500, reason: 'token revoked' });
    for (const n of nodes) expect(await connect(n, oldToken)).toBe(3500);
    const fresh = await a.token('carol', { issuedAt: now });
    for (const n of nodes) await connected(n, fresh);

    await b.kill9();
    const restarted = await suite.instance(env);
    expect(await connect(restarted, revoked)).toBe(3500);
    expect(await connect(restarted, oldToken)).toBe(3500);
    await connected(restarted, other);
    await connected(restarted, fresh);

    // Bad parameters: BAD_REQUEST, nothing changed.
    expect((await a.api('block_user', { user: '', expire_at: -1 })).body.error?.code).toBe(107);
    expect((await a.api('revoke_token', { jti: 'bob-laptop' })).body.error?.code).toBe(107);
    await connected(a, other);
  });

  it('invalidate_user_tokens with a channel ends and refuses that user subscriptions to it made with older subscription tokens, on every instance and after a restart', async () => {
    const env = await suite.env(`-${randomBytes(4).toString('hex')}`);
    const [a, b] = await Promise.all([suite.instance(env), suite.instance(env)]);
    const now = Math.floor(Date.now() / 1000);
    const oldVault = await a.token('erin', { channel: 'vault', issuedAt: now - 60 });
    const oldOther = await a.token('erin', { channel: 'other', issuedAt: now - 60 });
    const frankVault = await a.token('frank', { channel: 'vault', issuedAt: now - 60 });
    let nextId = 10;
    const subscribe = async (client: RawClient, channel: string, token: string): Promise<Record<string, unknown>> => {
      const id = nextId++;
      client.sendCommands({ id, subscribe: { channel, token } });
      return client.reply(id);
    };
    const onA = await connected(a, await a.token('erin'));
    const onB = await connected(b, await b.token('erin'));
    const frank = await connected(b, await b.token('frank'));
    for (const [client, channel, token] of [
      [onA, 'vault', oldVault],
      [onA, 'other', oldOther],
      [onB, 'vault', oldVault],
      [frank, 'vault', frankVault],
    ] as const) {
      expect((await subscribe(client, channel, token))['error']).toBeUndefined();
    }

    await b.call('invalidate_user_tokens', { user: 'erin', channel: 'vault', issued_before: now, expire_at: now + 3600 });
    await waitFor(() => onA.pushes('unsubscribe', 'vault').length === 1 && onB.pushes('unsubscribe', 'vault').length === 1, 1000, 'unsubscribe pushes');
    expect(onA.pushes('unsubscribe', 'vault')[0]?.['unsubscribe']).toEqual({ code: 2501, reason: 'subscription token revoked' });
    await sleep(200);
    // Other channels, other users and the connections themselves are untouched.
    expect(onA.pushes('unsubscribe', 'other')).toEqual([]);
    expect(frank.pushes('unsubscribe')).toEqual([]);
    expect([onA.closeCode, onB.closeCode, frank.closeCode]).toEqual([undefined, undefined, undefined]);

    // The old token is refused (109: the SDK fetches a new one) on every instance; a newer one works.
    for (const client of [onA, onB]) expect((await subscribe(client, 'vault', oldVault))['error']).toMatchObject({ code: 109 });
    const fresh = await a.token('erin', { channel: 'vault', issuedAt: now });
    for (const client of [onA, onB]) expect((await subscribe(client, 'vault', fresh))['error']).toBeUndefined();

    // Persisted: an instance started after a kill -9 refuses the old token too.
    await a.kill9();
    const restarted = await suite.instance(env);
    const later = await connected(restarted, await restarted.token('erin'));
    expect((await subscribe(later, 'vault', oldVault))['error']).toMatchObject({ code: 109 });
    expect((await subscribe(later, 'vault', fresh))['error']).toBeUndefined();

    // Bad parameters: an error code, nothing stored.
    expect((await b.api('invalidate_user_tokens', { user: 'erin', channel: 'no spaces' })).body.error?.code).toBeGreaterThan(0);
    expect((await b.api('invalidate_user_tokens', { user: 'erin', channel: '' })).body.error?.code).toBe(107);
  });
});
