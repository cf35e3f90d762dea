/**
 * The durable chat end to end (issue 10, items 3 to 8) on one real Relais process with its
 * embedded SQLite store, driven by the real `centrifuge` SDK and the HTTP API: rooms and
 * members (only members subscribe, publish, read history and presence), the last 50 messages
 * on join, optimistic sends stored once, read positions pushed to the user's other
 * connections with unread counts and pages, direct messages stored once in the conversation
 * and copied to both users, user status with last seen, history removal and erasure.
 */
import type { Centrifuge, PublicationContext, Subscription } from 'centrifuge';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sdkClient, sleep, waitFor, type SdkClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

let relais: RelaisProcess;
const clients: SdkClient[] = [];

beforeAll(async () => {
  relais = await startRelais({ env: { RELAIS_CHAT_AWAY_AFTER: '1s' } });
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  await relais.stop();
});

async function client(user: string): Promise<SdkClient> {
  const c = await sdkClient(relais, user);
  clients.push(c);
  return c;
}

interface WireError {
  code: number;
  message: string;
}

/** The error a promise rejects with (the SDK rejects with `{code, message}`); fails when it resolves. */
async function refusal(promise: Promise<unknown>): Promise<WireError> {
  try {
    await promise;
  } catch (err) {
    return err as WireError;
  }
  throw new Error('expected a refusal');
}

/** Subscribes and resolves with how it ended: subscribed, or the error code of the refusal. */
async function trySubscribe(c: SdkClient, channel: string): Promise<{ sub: Subscription; outcome: 'subscribed' | number }> {
  const sub = c.subscribe(channel);
  const outcome = await new Promise<'subscribed' | number>((resolve) => {
    sub.once('subscribed', () => resolve('subscribed'));
    sub.once('unsubscribed', (ctx) => resolve(ctx.code));
  });
  return { sub, outcome };
}

async function rpc<T>(c: SdkClient | Centrifuge, method: string, data: unknown): Promise<T> {
  const centrifuge = 'centrifuge' in c ? c.centrifuge : c;
  return (await centrifuge.rpc(method, data)).data as T;
}

interface Message {
  offset: number;
  data: { text?: string; n?: number };
  info?: { user: string };
  tags?: Record<string, string>;
}

async function postMany(channel: string, count: number, from = 1): Promise<void> {
  for (let n = from; n < from + count; n++) await relais.call('publish', { channel, data: { n } });
}

describe('rooms and members', () => {
  it('only members subscribe, publish, read history and presence; a member gets the last 50 messages on join', async () => {
    const created = await relais.call<{ room: { room: string; title: string; created_by: string }; created: boolean; added: number }>('room_create', {
      room: 'team',
      title: 'The team',
      created_by: 'alice',
      members: ['bob'],
    });
    expect(created).toMatchObject({ room: { room: 'room:team', title: 'The team', created_by: 'alice' }, created: true, added: 2 });
    await postMany('room:team', 60);

    const bob = await client('bob');
    const joined = await trySubscribe(bob, 'room:team');
    expect(joined.outcome).toBe('subscribed');
    await waitFor(() => bob.pubs('room:team').length === 50, 5000, 'the last 50 on join');
    expect(bob.pubs('room:team').map((p) => p.offset)).toEqual(Array.from({ length: 50 }, (_, i) => 11 + i));
    await joined.sub.publish({ text: 'from a member' });
    await waitFor(() => bob.pubs('room:team').length === 51, 5000, 'own message');
    expect((await joined.sub.history({ limit: 5, reverse: true })).publications.length).toBe(5);
    expect(Object.values((await joined.sub.presence()).clients).map((c) => c.user)).toEqual(['bob']);

    const mallory = await client('mallory');
    expect((await trySubscribe(mallory, 'room:team')).outcome).toBe(103);
    expect((await refusal(mallory.centrifuge.publish('room:team', { text: 'let me in' }))).code).toBe(103);
    expect((await refusal(mallory.centrifuge.history('room:team', { limit: 10 }))).code).toBe(103);
    expect((await refusal(mallory.centrifuge.presence('room:team'))).code).toBe(103);
    expect((await refusal(mallory.centrifuge.presenceStats('room:team'))).code).toBe(103);
    const history = await relais.call<{ publications: Message[] }>('history', { channel: 'room:team', limit: 1, reverse: true });
    expect(history.publications[0]?.data).toEqual({ text: 'from a member' });

    const members = await relais.call<{ members: { user: string }[] }>('room_members', { room: 'room:team' });
    expect(members.members.map((m) => m.user)).toEqual(['alice', 'bob']);
  });

  it('a removed member is cut off live and refused from then on; a deleted room takes its members, messages and subscriptions', async () => {
    await relais.call('room_create', { room: 'cutoff', members: ['carol', 'dave'] });
    const carol = await client('carol');
    const sub = carol.subscribe('room:cutoff');
    await sub.ready(5000);
    await sub.publish({ text: 'before' });
    const ended = new Promise<number>((resolve) => sub.once('unsubscribed', (ctx) => resolve(ctx.code)));

    expect(await relais.call('room_member_remove', { room: 'room:cutoff', user: 'carol' })).toEqual({ removed: true });
    expect(await ended).toBeLessThan(2500);
    carol.centrifuge.removeSubscription(sub);
    expect((await refusal(carol.centrifuge.publish('room:cutoff', { text: 'after' }))).code).toBe(103);
    expect((await trySubscribe(carol, 'room:cutoff')).outcome).toBe(103);
    expect(await relais.call('room_member_remove', { room: 'room:cutoff', user: 'carol' })).toEqual({ removed: false });

    const dave = await client('dave');
    const daveSub = dave.subscribe('room:cutoff');
    await daveSub.ready(5000);
    const daveEnded = new Promise<number>((resolve) => daveSub.once('unsubscribed', (ctx) => resolve(ctx.code)));
    expect(await relais.call('room_delete', { room: 'room:cutoff' })).toEqual({});
    expect(await daveEnded).toBeLessThan(2500);
    dave.centrifuge.removeSubscription(daveSub);
    expect((await relais.api('room_members', { room: 'room:cutoff' })).body.error?.code).toBe(102);
    expect((await trySubscribe(dave, 'room:cutoff')).outcome).toBe(103);
    expect((await relais.call<{ publications: unknown[] }>('history', { channel: 'room:cutoff', limit: 10 })).publications).toEqual([]);
  });

  it('refuses bad input with clear errors and stores nothing half-way; names and bodies with SQL metacharacters are just text', async () => {
    const error = async (method: string, params: unknown): Promise<{ status: number; code: number | undefined; message: string }> => {
      const reply = await relais.api(method, params);
      return { status: reply.status, code: reply.body.error?.code, message: reply.body.error?.message ?? '' };
    };
    expect(await error('room_member_add', { room: 'nowhere', user: 'bob' })).toMatchObject({ status: 404, code: 102 });
    expect(await error('room_members', { room: 'nowhere' })).toMatchObject({ status: 404, code: 102 });
    expect(await error('room_delete', { room: 'nowhere' })).toMatchObject({ status: 404, code: 102 });
    expect(await error('room_create', { room: "x'; DROP TABLE rooms; --" })).toMatchObject({ status: 400, code: 107 });
    expect((await error('room_create', { room: "x'; DROP TABLE rooms; --" })).message).toMatch(/channel name may only use/);
    expect(await error('room_create', { room: 'chat:general' })).toMatchObject({ status: 400, code: 107 });
    expect((await error('room_create', { room: 'chat:general' })).message).toMatch(/is not a room/);
    expect(await error('room_create', { room: 'nope:x' })).toMatchObject({ status: 404, code: 102 });
    expect(await error('room_create', { room: 'half', members: ['ok', 'not ok'] })).toMatchObject({ status: 400, code: 107 });
    expect((await error('room_create', { room: 'half', members: ['ok', 'not ok'] })).message).toMatch(/members\[1\]/);
    expect(await error('room_members', { room: 'half' })).toMatchObject({ status: 404, code: 102 });
    expect(await error('room_create', { room: 'x', extra: true })).toMatchObject({ status: 400, code: 107 });
    expect(await error('room_member_add', { room: 'dm:a,b', user: 'c' })).toMatchObject({ status: 400, code: 107 });
    expect((await error('room_member_add', { room: 'dm:a,b', user: 'c' })).message).toMatch(/conversation/);

    await relais.call('room_create', { room: 'drop--table/x#1', members: ['erin'] });
    const erin = await client('erin');
    const sub = erin.subscribe('room:drop--table/x#1');
    await sub.ready(5000);
    const text = "'; DELETE FROM messages; -- \" \\ %_ \u00e9\u{1F600}";
    await sub.publish({ text });
    await waitFor(() => erin.pubs('room:drop--table/x#1').length === 1, 5000, 'the message');
    expect(erin.pubs('room:drop--table/x#1')[0]?.data).toEqual({ text });
    const stored = await relais.call<{ publications: Message[] }>('history', { channel: 'room:drop--table/x#1', limit: 10 });
    expect(stored.publications.map((p) => p.data)).toEqual([{ text }]);
    expect(await error('publish', { channel: 'room:drop--table/x#1', data: { text: 'x'.repeat(70_000) } })).toMatchObject({ status: 413, code: 106 });
    expect((await relais.call<{ offset: number }>('history', { channel: 'room:drop--table/x#1', limit: 0 })).offset).toBe(1);
  });

  it('clients create rooms, invite, list members, leave; a non-member can do none of it', async () => {
    const frank = await client('frank');
    const gina = await client('gina');
    const mallory = await client('mallory');
    expect(await rpc(frank, 'chat.create', { room: 'frankly', title: 'Frank and co' })).toMatchObject({ room: { room: 'room:frankly', created_by: 'frank' }, created: true });
    expect(await rpc(frank, 'chat.create', { room: 'frankly' })).toMatchObject({ created: false });
    expect((await refusal(rpc(mallory, 'chat.create', { room: 'frankly', members: ['mallory'] }))).code).toBe(107);
    expect((await refusal(rpc(mallory, 'chat.invite', { room: 'frankly', user: 'mallory' }))).code).toBe(103);
    expect((await refusal(rpc(mallory, 'chat.members', { room: 'frankly' }))).code).toBe(103);
    expect((await refusal(rpc(mallory, 'chat.invite', { room: 'nowhere', user: 'mallory' }))).code).toBe(102);
    expect((await refusal(rpc(mallory, 'chat.nothing', {}))).code).toBe(104);
    expect((await refusal(rpc(mallory, 'chat.create', { room: 'a b' }))).code).toBe(107);

    expect(await rpc(frank, 'chat.invite', { room: 'room:frankly', user: 'gina' })).toEqual({ added: true });
    expect(await rpc(frank, 'chat.members', { room: 'frankly' })).toMatchObject({ members: [{ user: 'frank' }, { user: 'gina' }] });
    const ginaSub = gina.subscribe('room:frankly');
    await ginaSub.ready(5000);
    expect((await rpc<{ rooms: { room: string }[] }>(gina, 'chat.rooms', {})).rooms.map((r) => r.room)).toContain('room:frankly');

    const left = new Promise<number>((resolve) => ginaSub.once('unsubscribed', (ctx) => resolve(ctx.code)));
    expect(await rpc(gina, 'chat.leave', { room: 'frankly' })).toEqual({ removed: true });
    expect(await left).toBeLessThan(2500);
    expect((await refusal(gina.centrifuge.publish('room:frankly', { text: 'still here?' }))).code).toBe(103);
    expect((await rpc<{ rooms: { room: string }[] }>(gina, 'chat.rooms', {})).rooms.map((r) => r.room)).not.toContain('room:frankly');
  });
});

describe('optimistic send', () => {
  it('a retried send with the same temp_id is stored and delivered once; the reply and the publication carry the temp_id', async () => {
    await relais.call('room_create', { room: 'optimistic', members: ['hal', 'ivan'] });
    const hal = await client('hal');
    const ivan = await client('ivan');
    await ivan.subscribe('room:optimistic').ready(5000);
    const first = await rpc<{ channel: string; offset: number; epoch: string; temp_id: string }>(hal, 'chat.send', { channel: 'room:optimistic', data: { text: 'hi' }, temp_id: 'tmp-1' });
    const again = await rpc(hal, 'chat.send', { channel: 'room:optimistic', data: { text: 'hi' }, temp_id: 'tmp-1' });
    expect(again).toEqual(first);
    expect(first).toMatchObject({ channel: 'room:optimistic', offset: 1, temp_id: 'tmp-1' });
    // Another user's temporary id is theirs alone.
    const ivans = await rpc<{ offset: number }>(ivan, 'chat.send', { channel: 'room:optimistic', data: { text: 'hey' }, temp_id: 'tmp-1' });
    expect(ivans.offset).toBe(2);
    await waitFor(() => ivan.pubs('room:optimistic').length === 2, 5000, 'two messages');
    await sleep(200);
    expect(ivan.pubs('room:optimistic').map((p) => [p.offset, p.info?.user, p.tags?.['temp_id']])).toEqual([
      [1, 'hal', 'tmp-1'],
      [2, 'ivan', 'tmp-1'],
    ]);
    const mallory = await client('mallory');
    expect((await refusal(rpc(mallory, 'chat.send', { channel: 'room:optimistic', data: { text: 'x' }, temp_id: 'm' }))).code).toBe(103);

    // The server API takes a temp_id too, and idempotency_key makes its retries one message.
    const api1 = await relais.call('publish', { channel: 'room:optimistic', data: { text: 'api' }, temp_id: 'api-1', idempotency_key: 'k1' });
    const api2 = await relais.call('publish', { channel: 'room:optimistic', data: { text: 'api' }, temp_id: 'api-1', idempotency_key: 'k1' });
    expect(api2).toEqual(api1);
    await waitFor(() => ivan.pubs('room:optimistic').length === 3, 5000, 'the API message');
    expect(ivan.pubs('room:optimistic')[2]?.tags?.['temp_id']).toBe('api-1');
  });
});

describe('read positions', () => {
  it('a read position moves forward only, reaches the user’s other connections live, and unread messages page until read', async () => {
    await relais.call('room_create', { room: 'reading', members: ['judy'] });
    await postMany('room:reading', 5);
    const phone = await client('judy');
    const laptop = await client('judy');
    const pushed: { type: string; room: string; read_offset: number; unread: number }[] = [];
    laptop.centrifuge.on('message', (ctx) => pushed.push(ctx.data as (typeof pushed)[number]));

    const rooms = await rpc<{ rooms: { room: string; unread: number; read_offset: number; last_message?: Message }[] }>(phone, 'chat.rooms', {});
    expect(rooms.rooms.find((r) => r.room === 'room:reading')).toMatchObject({ unread: 5, read_offset: 0, last_message: { offset: 5, data: { n: 5 } } });

    expect(await rpc(phone, 'chat.read', { room: 'reading', offset: 3 })).toMatchObject({ room: 'room:reading', read_offset: 3, unread: 2, offset: 5 });
    await waitFor(() => pushed.length === 1, 5000, 'the read position on the other connection');
    expect(pushed[0]).toMatchObject({ type: 'chat.read', room: 'room:reading', read_offset: 3, unread: 2 });
    expect(await rpc(phone, 'chat.read', { room: 'reading', offset: 1 })).toMatchObject({ read_offset: 3, unread: 2 });
    expect(await rpc(phone, 'chat.read', { room: 'reading', offset: 99 })).toMatchObject({ read_offset: 5, unread: 0 });

    await postMany('room:reading', 4, 6);
    const unread = await rpc<{ messages: Message[]; unread: number; next_before?: number }>(laptop, 'chat.unread', { room: 'reading', limit: 3 });
    expect({ offsets: unread.messages.map((m) => m.offset), unread: unread.unread, next: unread.next_before }).toEqual({ offsets: [7, 8, 9], unread: 4, next: 7 });
    const older = await rpc<{ messages: Message[]; next_before?: number }>(laptop, 'chat.unread', { room: 'reading', limit: 3, before: 7 });
    expect({ offsets: older.messages.map((m) => m.offset), next: older.next_before }).toEqual({ offsets: [6], next: undefined });

    // A device that reconnects finds the same unread messages until one of them is read.
    phone.close();
    const again = await client('judy');
    expect((await rpc<{ messages: Message[] }>(again, 'chat.unread', { room: 'reading' })).messages.map((m) => m.offset)).toEqual([6, 7, 8, 9]);
    const mallory = await client('mallory');
    expect((await refusal(rpc(mallory, 'chat.read', { room: 'reading', offset: 9 }))).code).toBe(103);
    expect((await refusal(rpc(mallory, 'chat.unread', { room: 'reading' }))).code).toBe(103);
  });
});

describe('direct messages', () => {
  it('a message to @user is stored once in the conversation, reaches both users, pages like a room, and lists in both room lists', async () => {
    const kim = await client('kim');
    const leo = await client('leo');
    await kim.subscribe('user:kim').ready(5000);
    await leo.subscribe('user:leo').ready(5000);

    await leo.centrifuge.publish('@kim', { text: 'psst', info: { user: 'mallory' } });
    await waitFor(() => kim.pubs('user:kim').length === 1 && leo.pubs('user:leo').length === 1, 5000, 'both copies');
    const copy = kim.pubs('user:kim')[0];
    expect(copy?.info?.user).toBe('leo');
    expect(copy?.data).toEqual({ text: 'psst', info: { user: 'mallory' } });
    expect(copy?.tags).toMatchObject({ dm_channel: 'dm:kim,leo', dm_offset: '1' });

    const sent = await rpc<{ channel: string; offset: number; temp_id: string }>(kim, 'chat.dm', { to: 'leo', data: { text: 'yes?' }, temp_id: 'd1' });
    expect(await rpc(kim, 'chat.dm', { to: 'leo', data: { text: 'yes?' }, temp_id: 'd1' })).toEqual(sent);
    expect(sent).toMatchObject({ channel: 'dm:kim,leo', offset: 2, temp_id: 'd1' });
    await waitFor(() => leo.pubs('user:leo').length === 2, 5000, 'the reply');
    await sleep(200);
    expect(leo.pubs('user:leo').map((p) => [p.info?.user, p.tags?.['dm_offset'], p.tags?.['temp_id']])).toEqual([
      ['leo', '1', undefined],
      ['kim', '2', 'd1'],
    ]);

    for (let i = 3; i <= 8; i++) await rpc(kim, 'chat.send', { channel: '@leo', data: { text: `m${i}` } });
    const conversation = leo.subscribe('dm:kim,leo');
    await conversation.ready(5000);
    await waitFor(() => leo.pubs('dm:kim,leo').length === 8, 5000, 'the conversation on join');
    const page = await conversation.history({ limit: 3, reverse: true, since: { offset: 4, epoch: '' } });
    expect(page.publications.map((p) => p.offset)).toEqual([3, 2, 1]);
    for (const who of [kim, leo]) {
      const list = await rpc<{ rooms: { room: string; unread: number }[] }>(who, 'chat.rooms', {});
      expect(list.rooms.find((r) => r.room === 'dm:kim,leo')).toMatchObject({ unread: 8 });
    }
    const mallory = await client('mallory');
    expect((await trySubscribe(mallory, 'dm:kim,leo')).outcome).toBe(103);
    expect((await refusal(mallory.centrifuge.publish('dm:kim,leo', { text: 'x' }))).code).toBe(103);
    expect((await relais.call<{ publications: Message[] }>('history', { channel: 'dm:kim,leo', limit: 100 })).publications.length).toBe(8);
  });
});

describe('user status', () => {
  it('goes online, away after chat.away_after without commands, online again, offline with last seen; watchers get each change once', async () => {
    const watcher = await client('watcher');
    watcher.subscribe('status:nina');
    await waitFor(() => true, 0);
    const statuses = (): string[] => watcher.pubs('status:nina').map((p: PublicationContext) => (p.data as { status: string }).status);

    const nina = await client('nina');
    await waitFor(() => statuses().at(-1) === 'online', 5000, 'online');
    await waitFor(() => statuses().at(-1) === 'away', 5000, 'away after 1 s');
    const second = await client('nina');
    await waitFor(() => statuses().at(-1) === 'online', 5000, 'online again with a new connection');
    await rpc(second, 'chat.rooms', {});
    await waitFor(() => statuses().at(-1) === 'away', 5000, 'away again');
    await rpc(nina, 'chat.rooms', {});
    await waitFor(() => statuses().at(-1) === 'online', 5000, 'online on activity');
    expect((await relais.call<{ users: unknown[] }>('user_status', { users: ['nina', 'nobody'] })).users).toEqual([
      { user: 'nina', status: 'online' },
      { user: 'nobody', status: 'offline' },
    ]);
    const before = Date.now();
    nina.close();
    second.close();
    await waitFor(() => statuses().at(-1) === 'offline', 5000, 'offline');
    const last = watcher.pubs('status:nina').at(-1)?.data as { last_seen: number };
    expect(last.last_seen).toBeGreaterThanOrEqual(before - 50);
    expect(statuses()).toEqual(['online', 'away', 'online', 'away', 'online', 'offline']);
    const read = await rpc<{ users: { user: string; status: string; last_seen: number }[] }>(watcher, 'chat.status', { users: ['nina'] });
    expect(read.users).toEqual([{ user: 'nina', status: 'offline', last_seen: last.last_seen }]);
    const late = await client('late');
    late.subscribe('status:nina');
    await waitFor(() => late.pubs('status:nina').length === 1, 5000, 'the latest status on join');
    expect(late.pubs('status:nina')[0]?.data).toMatchObject({ status: 'offline' });
  });
});

describe('retention and admin', () => {
  it('history_remove clears a room (admin only), user_messages_delete erases one user’s messages everywhere', async () => {
    await relais.call('room_create', { room: 'admin', members: ['olga', 'pete'] });
    const olga = await client('olga');
    const pete = await client('pete');
    const olgaSub = olga.subscribe('room:admin');
    const peteSub = pete.subscribe('room:admin');
    await Promise.all([olgaSub.ready(5000), peteSub.ready(5000)]);
    for (let i = 0; i < 3; i++) {
      await olgaSub.publish({ text: `olga ${i}` });
      await peteSub.publish({ text: `pete ${i}` });
    }
    await rpc(pete, 'chat.dm', { to: 'olga', data: { text: 'private' } });
    expect((await relais.api('history_remove', { channel: 'room:admin' }, 'not-the-key')).status).toBe(401);

    expect(await relais.call<{ deleted: number }>('user_messages_delete', { user: 'pete' })).toEqual({ deleted: 4 });
    const kept = await relais.call<{ publications: Message[] }>('history', { channel: 'room:admin', limit: 100 });
    expect(kept.publications.map((p) => [p.offset, p.data.text])).toEqual([
      [1, 'olga 0'],
      [3, 'olga 1'],
      [5, 'olga 2'],
    ]);
    expect((await relais.call<{ publications: Message[] }>('history', { channel: 'dm:olga,pete', limit: 100 })).publications).toEqual([]);

    const before = await relais.call<{ epoch: string }>('history', { channel: 'room:admin', limit: 0 });
    expect(await relais.call('history_remove', { channel: 'room:admin' })).toEqual({});
    const after = await relais.call<{ publications: Message[]; offset: number; epoch: string }>('history', { channel: 'room:admin', limit: 100 });
    expect({ n: after.publications.length, offset: after.offset, newEpoch: after.epoch !== before.epoch }).toEqual({ n: 0, offset: 0, newEpoch: true });
    expect((await rpc<{ rooms: { room: string; unread: number }[] }>(olga, 'chat.rooms', {})).rooms.find((r) => r.room === 'room:admin')).toMatchObject({ unread: 0 });
  });
});
