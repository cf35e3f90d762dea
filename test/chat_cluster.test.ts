/**
 * The durable chat across instances (issue 10): two real Relais processes sharing the
 * machine's PostgreSQL (a fresh schema) and Redis (a unique prefix), with real `centrifuge`
 * clients on both. A member removed through one instance is cut off and refused at once on
 * the other, whose membership cache knew them; an optimistic send retried through the other
 * instance is stored once; read positions and direct messages reach the user's connections on
 * both; a user's status is agreed by both instances and published once per change, also when
 * an instance dies. Under CI=true a missing service fails the suite.
 */
import { randomBytes } from 'node:crypto';
import type { PublicationContext, Subscription } from 'centrifuge';
import { expect, it } from 'vitest';
import { describeWithBus } from './helpers/buses.js';
import { sdkClient, sleep, type SdkClient } from './helpers/clients.js';
import { until } from './helpers/cluster.js';
import type { RelaisProcess } from './helpers/relais.js';
import { sharedStoreMissing, sharedStoreSuite } from './helpers/shared_store.js';

describeWithBus('the chat across two instances (PostgreSQL, Redis)', await sharedStoreMissing(), () => {
  const suite = sharedStoreSuite('chat');
  const run = suite.run;

  /** Two instances on one fresh schema and one bus prefix of their own. */
  async function pair(): Promise<[RelaisProcess, RelaisProcess]> {
    const env = { ...(await suite.env(`-${randomBytes(4).toString('hex')}`)), RELAIS_CHAT_AWAY_AFTER: '2s' };
    return Promise.all([suite.instance(env), suite.instance(env)]);
  }

  async function client(relais: RelaisProcess, user: string): Promise<SdkClient> {
    return run.on(await sdkClient(relais, user), (c) => c.close());
  }

  async function refusalCode(promise: Promise<unknown>): Promise<number | undefined> {
    try {
      await promise;
      return undefined;
    } catch (err) {
      return (err as { code?: number }).code;
    }
  }

  async function subscribed(c: SdkClient, channel: string): Promise<{ sub: Subscription; outcome: 'subscribed' | number }> {
    const sub = c.subscribe(channel);
    const outcome = await new Promise<'subscribed' | number>((resolve) => {
      sub.once('subscribed', () => resolve('subscribed'));
      sub.once('unsubscribed', (ctx) => resolve(ctx.code));
    });
    return { sub, outcome };
  }

  it('a member removed through one instance is cut off live on the other and refused there at once; added again, allowed at once', async () => {
    const [a, b] = await pair();
    await a.call('room_create', { room: 'ops', members: ['bob', 'alice'] });
    const bob = await client(b, 'bob');
    const { sub, outcome } = await subscribed(bob, 'room:ops');
    expect(outcome).toBe('subscribed');
    // Instance B's membership cache now says bob is a member (for 5 s by default).
    await sub.publish({ text: 'before' });
    const ended = new Promise<number>((resolve) => sub.once('unsubscribed', (ctx) => resolve(ctx.code)));

    expect(await a.call('room_member_remove', { room: 'ops', user: 'bob' })).toEqual({ removed: true });
    expect(await ended).toBeLessThan(2500);
    bob.centrifuge.removeSubscription(sub);
    expect(await refusalCode(bob.centrifuge.publish('room:ops', { text: 'after' }))).toBe(103);
    expect(await refusalCode(bob.centrifuge.history('room:ops', { limit: 1 }))).toBe(103);
    const again = await subscribed(bob, 'room:ops');
    expect(again.outcome).toBe(103);
    bob.centrifuge.removeSubscription(again.sub);

    // The refusal is cached on B now; adding bob through A clears it there too.
    expect(await a.call('room_member_add', { room: 'ops', user: 'bob' })).toEqual({ added: true });
    expect(await refusalCode(bob.centrifuge.publish('room:ops', { text: 'back' }))).toBeUndefined();
    const history = await a.call<{ publications: { data: { text: string } }[] }>('history', { channel: 'room:ops', limit: 10 });
    expect(history.publications.map((p) => p.data.text)).toEqual(['before', 'back']);
  }, 60_000);

  it('an optimistic send retried through the other instance, even at the same moment, is stored and delivered once', async () => {
    const [a, b] = await pair();
    await a.call('room_create', { room: 'retry', members: ['alice', 'reader'] });
    const onA = await client(a, 'alice');
    const onB = await client(b, 'alice');
    const reader = await client(b, 'reader');
    await reader.subscribe('room:retry').ready(5000);
    const send = (c: SdkClient, tempId: string): Promise<unknown> => c.centrifuge.rpc('chat.send', { channel: 'room:retry', data: { text: tempId }, temp_id: tempId }).then((r): unknown => r.data);

    const first = await send(onA, 't1');
    expect(await send(onB, 't1')).toEqual(first);
    const together = await Promise.all([send(onA, 't2'), send(onB, 't2'), send(onA, 't2'), send(onB, 't2')]);
    expect(new Set(together.map((r) => JSON.stringify(r))).size).toBe(1);
    await until(() => reader.pubs('room:retry').length >= 2, 5000, 'two messages');
    await sleep(300);
    expect(reader.pubs('room:retry').map((p) => [p.offset, p.tags?.['temp_id']])).toEqual([
      [1, 't1'],
      [2, 't2'],
    ]);
    const stored = await b.call<{ publications: unknown[] }>('history', { channel: 'room:retry', limit: 10 });
    expect(stored.publications.length).toBe(2);
  }, 60_000);

  it('read positions and direct messages reach the user’s connections on both instances', async () => {
    const [a, b] = await pair();
    await a.call('room_create', { room: 'sync', members: ['judy'] });
    for (let n = 1; n <= 4; n++) await a.call('publish', { channel: 'room:sync', data: { n } });
    const phone = await client(a, 'judy');
    const laptop = await client(b, 'judy');
    const pushed: unknown[] = [];
    laptop.centrifuge.on('message', (ctx) => pushed.push(ctx.data));
    await phone.centrifuge.rpc('chat.read', { room: 'sync', offset: 3 });
    await until(() => pushed.length === 1, 5000, 'the read position on the other instance');
    expect(pushed[0]).toMatchObject({ type: 'chat.read', room: 'room:sync', read_offset: 3, unread: 1 });
    const rooms = (await laptop.centrifuge.rpc('chat.rooms', {})).data as { rooms: { room: string; unread: number }[] };
    expect(rooms.rooms.find((r) => r.room === 'room:sync')?.unread).toBe(1);

    const kimA = await client(a, 'kim');
    const kimB = await client(b, 'kim');
    await Promise.all([kimA.subscribe('user:kim').ready(5000), kimB.subscribe('user:kim').ready(5000)]);
    const leo = await client(b, 'leo');
    await leo.centrifuge.rpc('chat.dm', { to: 'kim', data: { text: 'hi' }, temp_id: 'x' });
    await phone.centrifuge.rpc('chat.rooms', {});
    await leo.centrifuge.rpc('chat.dm', { to: 'kim', data: { text: 'hi' }, temp_id: 'x' });
    await until(() => kimA.pubs('user:kim').length === 1 && kimB.pubs('user:kim').length === 1, 5000, 'the copies on both instances');
    await sleep(300);
    expect([...kimA.pubs('user:kim'), ...kimB.pubs('user:kim')].map((p) => [p.info?.user, p.tags?.['dm_channel']])).toEqual([
      ['leo', 'dm:kim,leo'],
      ['leo', 'dm:kim,leo'],
    ]);
    expect((await a.call<{ publications: unknown[] }>('history', { channel: 'dm:kim,leo', limit: 10 })).publications.length).toBe(1);
  }, 60_000);

  it('a user connected to both instances: each change of status is published once; offline with last seen when the last connection ends, and when its instance dies', async () => {
    const [a, b] = await pair();
    const watcher = await client(a, 'watcher');
    watcher.subscribe('status:nina');
    const statuses = (): string[] => watcher.pubs('status:nina').map((p: PublicationContext) => (p.data as { status: string }).status);

    const onA = await client(a, 'nina');
    await until(() => statuses().at(-1) === 'online', 5000, 'online');
    const onB = await client(b, 'nina');
    // Idle on both instances for chat.away_after (2 s): away, once.
    await until(() => statuses().at(-1) === 'away', 8000, () => `away, got ${statuses().join(',')}`);
    await onB.centrifuge.rpc('chat.rooms', {});
    await until(() => statuses().at(-1) === 'online', 5000, 'online on activity through B');
    onA.close();
    await sleep(300);
    const before = Date.now();
    onB.close();
    await until(() => statuses().at(-1) === 'offline', 5000, 'offline once both connections ended');
    await sleep(500);
    expect(statuses()).toEqual(['online', 'away', 'online', 'offline']);
    const offline = watcher.pubs('status:nina').at(-1)?.data as { last_seen: number };
    expect(offline.last_seen).toBeGreaterThanOrEqual(before - 50);
    expect((await b.call<{ users: unknown[] }>('user_status', { users: ['nina'] })).users).toEqual([{ user: 'nina', status: 'offline', last_seen: offline.last_seen }]);

    // An instance that dies takes its connections with it: the other publishes offline.
    await client(b, 'nina');
    await until(() => statuses().at(-1) === 'online', 5000, 'online through B');
    await b.kill9();
    await until(() => statuses().at(-1) === 'offline', 45_000, () => `offline after B died, got ${statuses().join(',')}`);
    expect(statuses()).toEqual(['online', 'away', 'online', 'offline', 'online', 'offline']);
  }, 90_000);
});
