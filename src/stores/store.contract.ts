/**
 * The conformance suite every Store runs: SQLite and PostgreSQL. A setup gives fresh
 * databases (a temp file, a fresh schema) and second instances over the same database, as
 * two Relais instances sharing it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RelaisError, type RelaisErrorCode } from '../core/errors.js';
import type { JsonText } from '../core/json.js';
import type { MigrationSet } from './migrations.js';
import type { AppendRequest, AppendResult, Store, StoredMessage } from './store.js';
import { StoreSweeper } from './store_sweeper.js';

export interface StoreFactoryOptions {
  /** Features' migration sets besides the store's. */
  readonly migrations?: readonly MigrationSet[];
  /** Lock waits and queries fail after a few hundred ms instead of seconds. */
  readonly shortTimeouts?: boolean;
}

export interface StoreContractSetup {
  /** A store over a new, empty database, not migrated. */
  fresh(options?: StoreFactoryOptions): Promise<Store>;
  /** One more store over the database of the last `fresh()`: another Relais instance. Not migrated. */
  sibling(options?: StoreFactoryOptions): Promise<Store>;
  /**
   * Holds, from another connection, what an append to `channel` in the last `fresh()` database
   * needs to lock (SQLite: the database's write lock; PostgreSQL: the channel's row), as a
   * long transaction would. Resolves once held, with the function that releases it.
   */
  holdWriteLock(channel: string): Promise<() => Promise<void>>;
  /** Frees the databases of the test (closes nothing the suite opened). */
  cleanup(): Promise<void>;
}

const json = (value: unknown): JsonText => JSON.stringify(value) as JsonText;
const T0 = 1_700_000_000_000;

function req(channel: string, value: unknown, extra: Partial<AppendRequest> = {}): AppendRequest {
  return { channel, data: json(value), time: T0, ...extra };
}

/** Rejects when `promise` has not settled within `ms`: no test waits without a deadline. */
export async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The RelaisError code a promise rejects with ('resolved' when it does not reject). */
export async function rejection(promise: Promise<unknown>): Promise<RelaisErrorCode | 'resolved' | 'other'> {
  try {
    await promise;
    return 'resolved';
  } catch (err) {
    return err instanceof RelaisError ? err.code : 'other';
  }
}

const offsets = (messages: readonly StoredMessage[]): number[] => messages.map((m) => m.offset);
const values = (messages: readonly StoredMessage[]): unknown[] => messages.map((m) => JSON.parse(m.data) as unknown);
const seq = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Every message of a channel through range pages of `size`. */
async function readAll(store: Store, channel: string, size = 500): Promise<StoredMessage[]> {
  const all: StoredMessage[] = [];
  for (let round = 0; round < 10_000; round++) {
    const page = await store.range(channel, { after: all[all.length - 1]?.offset ?? 0, limit: size });
    if (page.messages.length === 0) return all;
    all.push(...page.messages);
  }
  throw new Error('readAll: too many pages');
}

export function describeStoreContract(name: string, setup: StoreContractSetup): void {
  describe(`Store contract: ${name}`, () => {
    const opened: Store[] = [];

    async function open(options?: StoreFactoryOptions): Promise<Store> {
      const store = await setup.fresh(options);
      opened.push(store);
      await store.migrate();
      return store;
    }
    async function sibling(options?: StoreFactoryOptions, migrate = true): Promise<Store> {
      const store = await setup.sibling(options);
      opened.push(store);
      if (migrate) await store.migrate();
      return store;
    }

    afterEach(async () => {
      for (const store of opened.splice(0)) await store.close();
      await setup.cleanup();
    });

    it('migrates once, and concurrent migrations of two instances apply each version once', async () => {
      const a = await setup.fresh();
      opened.push(a);
      const b = await sibling(undefined, false);
      const [ra, rb] = await within(20_000, Promise.all([a.migrate(), b.migrate()]), 'concurrent migrate');
      expect([...ra.applied, ...rb.applied]).toEqual([1]);
      expect(ra.version).toBe(1);
      expect((await a.migrate()).applied).toEqual([]);
      await a.append([req('chat:m', 1)]);
      expect((await b.position('chat:m')).offset).toBe(1);
    });

    it('refuses a database migrated by newer code, changing nothing', async () => {
      const table = (n: number): string => `CREATE TABLE feature_t${n} (id INTEGER PRIMARY KEY)`;
      const v2: MigrationSet = {
        component: 'feature',
        migrations: [
          { version: 1, name: 'one', sql: table(1) },
          { version: 2, name: 'two', sql: table(2) },
        ],
      };
      const v1: MigrationSet = { component: 'feature', migrations: v2.migrations.slice(0, 1) };
      const newer = await setup.fresh({ migrations: [v2] });
      opened.push(newer);
      await newer.migrate();
      const older = await setup.sibling({ migrations: [v1] });
      opened.push(older);
      await expect(older.migrate()).rejects.toThrow(/version 2, newer than this Relais knows \(1\)/);
    });

    it('assigns offsets from 1 under one epoch and returns every field as given', async () => {
      const store = await open();
      const info = { user: 'alice', client: 'c-1', connInfo: json({ name: 'Alice' }), chanInfo: json({ role: 'admin' }) };
      const results = await store.append([
        req('chat:a', { i: 1 }, { info, tags: { kind: 'text', empty: '' }, tempId: 'tmp-1', idempotencyKey: 'k-1', time: T0 + 5 }),
        req('chat:a', { i: 2 }),
        req('chat:b', { i: 3 }, { info: { user: '', client: 'anon' } }),
      ]);
      expect(results.map((r) => [r.message.channel, r.message.offset, r.duplicate])).toEqual([
        ['chat:a', 1, false],
        ['chat:a', 2, false],
        ['chat:b', 1, false],
      ]);
      const first = results[0]?.message;
      expect(first).toEqual({
        channel: 'chat:a',
        offset: 1,
        epoch: expect.any(String) as unknown,
        data: json({ i: 1 }),
        info,
        tags: { kind: 'text', empty: '' },
        tempId: 'tmp-1',
        idempotencyKey: 'k-1',
        time: T0 + 5,
      });
      expect(first?.epoch).not.toBe('');
      const page = await store.range('chat:a', { limit: 10 });
      expect(page.messages[0]).toEqual(first);
      expect(page.messages[1]).toEqual({ channel: 'chat:a', offset: 2, epoch: first?.epoch, data: json({ i: 2 }), time: T0 });
      expect(page.position).toEqual({ offset: 2, epoch: first?.epoch });
      expect((await store.range('chat:b', { limit: 1 })).messages[0]?.info).toEqual({ user: '', client: 'anon' });
      expect(await store.position('chat:none')).toEqual({ offset: 0, epoch: '' });
      expect(await store.range('chat:none', { limit: 5 })).toEqual({ messages: [], position: { offset: 0, epoch: '' } });
      expect(await store.append([])).toEqual([]);
    });

    it('keeps offsets contiguous and in submission order under many concurrent appends across channels', async () => {
      const store = await open();
      const channels = Array.from({ length: 8 }, (_, i) => `room:c${i}`);
      const calls: Promise<readonly AppendResult[]>[] = [];
      for (let i = 0; i < 1200; i++) {
        const channel = channels[i % channels.length] ?? '';
        // Some calls carry several requests, in array order.
        calls.push(store.append(i % 10 === 0 ? [req(channel, [i, 0]), req(channel, [i, 1])] : [req(channel, [i, 0])]));
      }
      const results = (await within(30_000, Promise.all(calls), 'concurrent appends')).flat();
      for (const channel of channels) {
        const stored = await readAll(store, channel);
        expect(offsets(stored)).toEqual(seq(1, stored.length));
        // Submission order: call index, then position within the call.
        const order = values(stored) as [number, number][];
        const sorted = [...order].sort((x, y) => x[0] - y[0] || x[1] - y[1]);
        expect(order).toEqual(sorted);
        const acked = results.filter((r) => r.message.channel === channel).map((r) => r.message.offset);
        expect(acked.sort((x, y) => x - y)).toEqual(offsets(stored));
      }
      expect(results).toHaveLength(1320);
    });

    it('never duplicates or skips offsets when two instances append to the same channels at once', async () => {
      const a = await open();
      const b = await sibling();
      const appendMany = (store: Store, tag: string): Promise<readonly AppendResult[]>[] =>
        Array.from({ length: 300 }, (_, i) => store.append([req(`room:s${i % 3}`, `${tag}${i}`)]));
      const results = (await within(30_000, Promise.all([...appendMany(a, 'a'), ...appendMany(b, 'b')]), 'two instances')).flat();
      expect(results).toHaveLength(600);
      for (let c = 0; c < 3; c++) {
        const stored = await readAll(a, `room:s${c}`);
        expect(offsets(stored)).toEqual(seq(1, 200));
        // Each instance's own appends keep their submission order.
        for (const tag of ['a', 'b']) {
          const mine = (values(stored) as string[]).filter((v) => v.startsWith(tag)).map((v) => Number(v.slice(1)));
          expect(mine).toEqual([...mine].sort((x, y) => x - y));
        }
      }
    });

    it('opens a channel never written with an epoch its first message keeps, the same for two instances opening it at once', async () => {
      const a = await open();
      const b = await sibling();
      expect(await a.position('room:fresh')).toEqual({ offset: 0, epoch: '' });
      const opened = await within(10_000, Promise.all([...Array.from({ length: 5 }, () => a.open('room:fresh')), ...Array.from({ length: 5 }, () => b.open('room:fresh'))]), 'opens');
      const epoch = opened[0]?.epoch ?? '';
      expect(epoch).not.toBe('');
      expect(opened).toEqual(opened.map(() => ({ offset: 0, epoch })));
      const [first] = await a.append([req('room:fresh', 1)]);
      expect({ offset: first?.message.offset, epoch: first?.message.epoch }).toEqual({ offset: 1, epoch });
      expect(await b.open('room:fresh')).toEqual({ offset: 1, epoch });
    });

    it('stores an idempotency key once: sequential, concurrent, within one call, and per channel', async () => {
      const store = await open();
      const first = await store.append([req('chat:i', 'first', { idempotencyKey: 'k', tempId: 't1' })]);
      const again = await store.append([req('chat:i', 'second', { idempotencyKey: 'k', tempId: 't2' })]);
      expect(again[0]).toEqual({ message: first[0]?.message, duplicate: true });
      const concurrent = (await Promise.all(Array.from({ length: 20 }, (_, i) => store.append([req('chat:i', i, { idempotencyKey: 'c' })])))).flat();
      expect(concurrent.filter((r) => !r.duplicate)).toHaveLength(1);
      expect(new Set(concurrent.map((r) => r.message.offset)).size).toBe(1);
      const inOne = await store.append([req('chat:i', 'x', { idempotencyKey: 'same' }), req('chat:i', 'y', { idempotencyKey: 'same' })]);
      expect(inOne.map((r) => r.duplicate)).toEqual([false, true]);
      expect(inOne[1]?.message).toEqual(inOne[0]?.message);
      const other = await store.append([req('chat:j', 'other', { idempotencyKey: 'k' })]);
      expect(other[0]?.duplicate).toBe(false);
      expect(offsets(await readAll(store, 'chat:i'))).toEqual([1, 2, 3]);
      expect(values(await readAll(store, 'chat:i'))).toEqual(['first', values(concurrent.map((r) => r.message))[0], 'x']);
    });

    it('stores an idempotency key once across two instances racing', async () => {
      const a = await open();
      const b = await sibling();
      const racers = Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? a : b).append([req('chat:race', i, { idempotencyKey: `k${i % 5}` })]));
      const results = (await within(20_000, Promise.all(racers), 'racing duplicates')).flat();
      expect(results.filter((r) => !r.duplicate)).toHaveLength(5);
      const stored = await readAll(a, 'chat:race');
      expect(offsets(stored)).toEqual([1, 2, 3, 4, 5]);
      for (const r of results) expect(stored.find((m) => m.idempotencyKey === r.message.idempotencyKey)).toEqual(r.message);
    });

    it('forgets idempotency keys older than asked, after which the key stores anew', async () => {
      const store = await open();
      await store.append([req('chat:f', 1, { idempotencyKey: 'old', time: T0 }), req('chat:f', 2, { idempotencyKey: 'new', time: T0 + 10_000 })]);
      expect(await store.forgetIdempotencyKeys(T0 + 5_000, 100)).toBe(1);
      expect((await store.append([req('chat:f', 3, { idempotencyKey: 'old' })]))[0]?.duplicate).toBe(false);
      expect((await store.append([req('chat:f', 4, { idempotencyKey: 'new' })]))[0]?.duplicate).toBe(true);
    });

    it('pages back and forth covering every message once', async () => {
      const store = await open();
      for (let i = 1; i <= 250; i += 50) await store.append(seq(i, i + 49).map((n) => req('chat:p', n)));
      const back: number[] = [];
      let before: number | undefined;
      for (let round = 0; round < 20; round++) {
        const page = await store.page('chat:p', before === undefined ? { limit: 40 } : { before, limit: 40 });
        if (page.messages.length === 0) break;
        expect(page.position.offset).toBe(250);
        back.push(...offsets(page.messages));
        before = page.messages[page.messages.length - 1]?.offset;
      }
      expect(back).toEqual(seq(1, 250).reverse());
      const forward: number[] = [];
      let after = 0;
      for (let round = 0; round < 20; round++) {
        const page = await store.range('chat:p', { after, limit: 40 });
        if (page.messages.length === 0) break;
        forward.push(...offsets(page.messages));
        after = page.messages[page.messages.length - 1]?.offset ?? after;
      }
      expect(forward).toEqual(seq(1, 250));
      const latest = await store.latest('chat:p', 50);
      expect(offsets(latest.messages)).toEqual(seq(201, 250));
      expect(values(latest.messages)).toEqual(seq(201, 250));
      expect(offsets((await store.range('chat:p', { after: 245, limit: 100 })).messages)).toEqual(seq(246, 250));
    });

    it('trims by age and by size, oldest first, bounded, leaving a contiguous tail', async () => {
      const store = await open();
      await store.append(seq(1, 10).map((n) => req('chat:t', n, { time: T0 + n * 1000 })));
      // A message with an out-of-order old time stays while newer ones stand before it.
      await store.append([req('chat:t', 11, { time: T0 })]);
      expect(await store.trim('chat:t', { minTime: T0 + 4500, maxOffset: 0, limit: 2 })).toBe(2);
      expect(await store.trim('chat:t', { minTime: T0 + 4500, maxOffset: 0, limit: 100 })).toBe(2);
      expect(offsets(await readAll(store, 'chat:t'))).toEqual(seq(5, 11));
      expect(await store.trim('chat:t', { minTime: 0, maxOffset: 8, limit: 100 })).toBe(4);
      expect(offsets(await readAll(store, 'chat:t'))).toEqual([9, 10, 11]);
      expect(await store.trim('chat:t', { minTime: 0, maxOffset: 0, limit: 100 })).toBe(0);
      expect((await store.position('chat:t')).offset).toBe(11);
    });

    it('sweeps retention per channel in bounded steps until every channel is within its policy', async () => {
      const store = await open();
      let now = T0 + 100_000;
      for (const c of ['keep:a', 'size:a', 'size:b', 'ttl:a']) await store.append(seq(1, 30).map((n) => req(c, n, { time: T0 + n * 1000 })));
      const sweeper = new StoreSweeper({
        store,
        idempotencyTtlMs: 60_000,
        channelsPerSweep: 2,
        messagesPerSweep: 15,
        now: () => now,
        retention: (channel) => (channel.startsWith('size:') ? { ttlMs: 0, size: 5 } : channel.startsWith('ttl:') ? { ttlMs: 100_000 - 20_500, size: 0 } : undefined),
      });
      let removed = 0;
      for (let i = 0; i < 20; i++) removed += (await sweeper.sweep()).removed;
      expect(removed).toBe(25 + 25 + 20);
      expect(offsets(await readAll(store, 'keep:a'))).toEqual(seq(1, 30));
      expect(offsets(await readAll(store, 'size:a'))).toEqual(seq(26, 30));
      expect(offsets(await readAll(store, 'size:b'))).toEqual(seq(26, 30));
      expect(offsets(await readAll(store, 'ttl:a'))).toEqual(seq(21, 30));
      now += 1;
      expect((await sweeper.sweep()).removed).toBe(0);
    });

    it('clears a channel: a new epoch, offsets from 1 again, read positions reset', async () => {
      const store = await open();
      const before = (await store.append(seq(1, 5).map((n) => req('chat:c', n))))[0]?.message.epoch;
      expect(await store.setReadPosition('chat:c', 'alice', 4)).toBe(4);
      const cleared = await store.clear('chat:c');
      expect(cleared.offset).toBe(0);
      expect(cleared.epoch).not.toBe(before);
      expect(await store.position('chat:c')).toEqual(cleared);
      expect((await store.range('chat:c', { limit: 10 })).messages).toEqual([]);
      expect((await store.readState('chat:c', 'alice')).readOffset).toBe(0);
      const after = await store.append([req('chat:c', 'again')]);
      expect(after[0]?.message).toMatchObject({ offset: 1, epoch: cleared.epoch });
      expect((await store.clear('chat:never')).offset).toBe(0);
    });

    it("erases a user's messages everywhere and leaves the others' offsets", async () => {
      const store = await open();
      const alice = { user: 'alice', client: 'a1' };
      const bob = { user: 'bob', client: 'b1' };
      for (const c of ['chat:x', 'chat:y']) await store.append(seq(1, 6).map((n) => req(c, n, { info: n % 2 === 0 ? alice : bob })));
      await store.append(seq(1, 2500).map((n) => req('chat:z', n, { info: alice })));
      expect(await store.deleteUserMessages('alice')).toBe(2506);
      expect(offsets(await readAll(store, 'chat:x'))).toEqual([1, 3, 5]);
      expect((await readAll(store, 'chat:z')).length).toBe(0);
      expect(await store.deleteUserMessages('alice')).toBe(0);
      expect((await store.position('chat:x')).offset).toBe(6);
    });

    it('keeps rooms and members, and deletes a room with its members and messages', async () => {
      const store = await open();
      const made = await store.createRoom({ name: 'room:ops', title: 'Ops', createdBy: 'alice', createdAt: T0 });
      expect(made).toEqual({ created: true, room: { name: 'room:ops', title: 'Ops', createdBy: 'alice', createdAt: T0 } });
      expect(await store.createRoom({ name: 'room:ops', title: 'Other', createdBy: 'bob', createdAt: T0 + 1 })).toEqual({ created: false, room: made.room });
      expect(await store.getRoom('room:ops')).toEqual(made.room);
      expect(await store.getRoom('room:none')).toBeUndefined();
      expect(await store.addMember('room:ops', 'alice', T0)).toBe(true);
      expect(await store.addMember('room:ops', 'alice', T0 + 1)).toBe(false);
      for (const u of ['dave', 'bob', 'carol']) await store.addMember('room:ops', u, T0 + 2);
      expect(await rejection(store.addMember('room:none', 'alice', T0))).toBe('ROOM_NOT_FOUND');
      expect(await store.isMember('room:ops', 'bob')).toBe(true);
      expect(await store.isMember('room:ops', 'eve')).toBe(false);
      expect(await store.isMember('room:none', 'bob')).toBe(false);
      expect((await store.listMembers('room:ops', '', 2)).map((m) => m.user)).toEqual(['alice', 'bob']);
      expect(await store.listMembers('room:ops', 'bob', 10)).toEqual([
        { user: 'carol', joinedAt: T0 + 2 },
        { user: 'dave', joinedAt: T0 + 2 },
      ]);
      expect(await store.removeMember('room:ops', 'dave')).toBe(true);
      expect(await store.removeMember('room:ops', 'dave')).toBe(false);
      const epoch = (await store.append([req('room:ops', 'hello')]))[0]?.message.epoch;
      await store.setReadPosition('room:ops', 'bob', 1);
      expect(await store.deleteRoom('room:ops')).toBe(true);
      expect(await store.deleteRoom('room:ops')).toBe(false);
      expect(await store.isMember('room:ops', 'bob')).toBe(false);
      expect(await store.listMembers('room:ops', '', 10)).toEqual([]);
      expect(await store.position('room:ops')).toEqual({ offset: 0, epoch: '' });
      await store.createRoom({ name: 'room:ops', createdBy: 'carol', createdAt: T0 + 9 });
      const again = await store.append([req('room:ops', 'new life')]);
      expect(again[0]?.message.offset).toBe(1);
      expect(again[0]?.message.epoch).not.toBe(epoch);
      expect((await store.readState('room:ops', 'bob')).readOffset).toBe(0);
    });

    it("lists a user's rooms and conversations, most recent first, with last message and unread counts", async () => {
      const store = await open();
      for (const [name, at] of [['room:quiet', T0], ['room:busy', T0 + 1], ['dm:alice:bob', T0 + 2], ['room:other', T0 + 3]] as const) {
        await store.createRoom({ name, createdBy: 'alice', createdAt: at });
      }
      for (const room of ['room:quiet', 'room:busy', 'dm:alice:bob']) await store.addMember(room, 'alice', T0);
      await store.addMember('room:other', 'bob', T0);
      await store.append(seq(1, 5).map((n) => req('room:busy', `busy ${n}`, { time: T0 + 100 + n })));
      await store.append([req('dm:alice:bob', 'hi alice', { time: T0 + 50, info: { user: 'bob', client: 'b' } })]);
      expect(await store.setReadPosition('room:busy', 'alice', 2)).toBe(2);
      const rooms = await store.listUserRooms('alice', 10);
      expect(rooms.map((r) => r.room.name)).toEqual(['room:busy', 'dm:alice:bob', 'room:quiet']);
      expect(rooms.map((r) => [r.position.offset, r.readOffset, r.unread])).toEqual([
        [5, 2, 3],
        [1, 0, 1],
        [0, 0, 0],
      ]);
      expect(rooms[0]?.lastMessage).toMatchObject({ channel: 'room:busy', offset: 5, data: json('busy 5') });
      expect(rooms[1]?.lastMessage?.info).toEqual({ user: 'bob', client: 'b' });
      expect(rooms[2]?.lastMessage).toBeUndefined();
      expect(rooms[2]?.position).toEqual({ offset: 0, epoch: '' });
      expect((await store.listUserRooms('alice', 1)).length).toBe(1);
      expect(await store.listUserRooms('nobody', 10)).toEqual([]);
    });

    it('moves read positions forward only, never past the top', async () => {
      const store = await open();
      await store.append(seq(1, 10).map((n) => req('chat:r', n)));
      expect(await store.setReadPosition('chat:r', 'alice', 5)).toBe(5);
      expect(await store.setReadPosition('chat:r', 'alice', 3)).toBe(5);
      expect(await store.setReadPosition('chat:r', 'alice', 1000)).toBe(10);
      expect(await store.setReadPosition('chat:none', 'alice', 7)).toBe(0);
      const state = await store.readState('chat:r', 'alice');
      expect(state).toMatchObject({ readOffset: 10, unread: 0, position: { offset: 10 } });
      await store.append([req('chat:r', 11)]);
      expect((await store.readState('chat:r', 'alice')).unread).toBe(1);
      expect(await store.readState('chat:r', 'bob')).toMatchObject({ readOffset: 0, unread: 11 });
      const racing = await Promise.all([9, 4, 11, 6].map((o) => store.setReadPosition('chat:r', 'carol', o)));
      expect(racing.every((v) => v >= 4)).toBe(true);
      expect((await store.readState('chat:r', 'carol')).readOffset).toBe(11);
    });

    it('keeps revocations until removed or expired, the later put winning, across instances', async () => {
      const store = await open();
      await store.putRevocation({ kind: 'user', key: 'alice', issuedBefore: 0, expiresAt: 0 });
      await store.putRevocation({ kind: 'token', key: 'jti-1', issuedBefore: 0, expiresAt: T0 + 1000 });
      await store.putRevocation({ kind: 'user_tokens', key: 'bob', issuedBefore: T0, expiresAt: T0 + 500 });
      await store.putRevocation({ kind: 'user_tokens', key: 'bob', issuedBefore: T0 + 7, expiresAt: T0 + 2000 });
      const other = await sibling();
      expect(await other.listRevocations(T0, 100)).toEqual([
        { kind: 'token', key: 'jti-1', issuedBefore: 0, expiresAt: T0 + 1000 },
        { kind: 'user', key: 'alice', issuedBefore: 0, expiresAt: 0 },
        { kind: 'user_tokens', key: 'bob', issuedBefore: T0 + 7, expiresAt: T0 + 2000 },
      ]);
      expect(await store.deleteRevocation('user', 'alice')).toBe(true);
      expect(await store.deleteRevocation('user', 'alice')).toBe(false);
      expect((await store.listRevocations(T0 + 1000, 100)).map((r) => r.key)).toEqual(['bob']);
      expect(await rejection(store.putRevocation({ kind: 'user', key: '', issuedBefore: 0, expiresAt: 0 }))).toBe('BAD_REQUEST');
    });

    it('keeps when users were last seen, never going back', async () => {
      const store = await open();
      await store.touchUser('alice', T0 + 10);
      await store.touchUser('alice', T0 + 5);
      await store.touchUser('bob', T0);
      expect(await store.lastSeen('alice')).toBe(T0 + 10);
      expect(await store.lastSeen('eve')).toBeUndefined();
      expect(await store.lastSeenMany(['alice', 'bob', 'eve'])).toEqual(new Map([['alice', T0 + 10], ['bob', T0]]));
      expect(await store.lastSeenMany([])).toEqual(new Map());
    });

    it('stores SQL metacharacters and unicode byte for byte, and refuses what it cannot keep', async () => {
      const store = await open();
      const channel = `chat:'; DROP TABLE messages; --"\\%_*?`;
      const user = `o'brien "\\" ; DELETE FROM users; -- 名前 🙂`;
      const data = json({ text: `Robert'); DROP TABLE rooms;-- \\ "q" \u2028 \u00e9 e\u0301 𝄞 🙂`, nul: '\u0000 escaped' });
      const [result] = await store.append([req(channel, 0, { data, info: { user, client: "c'1" }, tags: { "k'ey": 'v"al' }, tempId: "t'%", idempotencyKey: 'k;--' })]);
      const [stored] = (await store.range(channel, { limit: 1 })).messages;
      expect(stored).toEqual(result?.message);
      expect(stored?.data).toBe(data);
      expect(stored?.info?.user).toBe(user);
      const title = `Équipe « terrain » '; DROP TABLE rooms; -- 🚚`;
      await store.createRoom({ name: channel, title, createdBy: user, createdAt: T0 });
      await store.addMember(channel, user, T0);
      expect(await store.isMember(channel, user)).toBe(true);
      const [room] = await store.listUserRooms(user, 5);
      expect(room?.room.title).toBe(title);
      expect(room?.lastMessage?.data).toBe(data);
      expect(await store.deleteUserMessages(user)).toBe(1);
      const refused = [
        store.append([req('chat:bad\u0000', 1)]),
        store.append([req('chat:bad', 1, { data: '"\ud800"' as JsonText })]),
        store.append([req('', 1)]),
        store.append([req('chat:bad', 1, { time: 1.5 })]),
        store.append([{ channel: 'chat:bad', data: '' as JsonText, time: T0 }]),
        store.range('chat:bad', { limit: 0 }),
        store.addMember('room:x', 'a\udc00', T0),
        store.setReadPosition('chat:bad', 'alice', -1),
      ];
      for (const outcome of await Promise.all(refused.map(rejection))) expect(outcome).toBe('BAD_REQUEST');
      expect(await store.position('chat:bad')).toEqual({ offset: 0, epoch: '' });
    });

    it('rejects a bad call alone, and a failed transaction rejects its whole batch and stores nothing', async () => {
      const store = await open({ shortTimeouts: true });
      await store.append([req('chat:held', 'before'), req('chat:free', 'before')]);
      const mixed = await Promise.all([store.append([req('chat:free', 'good 1')]), rejection(store.append([req('chat:free', 1, { time: -1 })])), store.append([req('chat:free', 'good 2')])]);
      expect(mixed[1]).toBe('BAD_REQUEST');
      expect(values(await readAll(store, 'chat:free'))).toEqual(['before', 'good 1', 'good 2']);

      const release = await setup.holdWriteLock('chat:held');
      let outcomes: string[];
      try {
        // Submitted in one turn: one batch, which the held lock makes fail.
        const t0 = Date.now();
        outcomes = await within(
          10_000,
          Promise.all([store.append([req('chat:held', 'lost')]), store.append([req('chat:free', 'lost'), req('chat:free', 'lost too')])].map(rejection)),
          'appends behind a held lock',
        );
        expect(Date.now() - t0).toBeLessThan(5_000);
      } finally {
        await release();
      }
      expect(outcomes).toEqual(['STORE_UNAVAILABLE', 'STORE_UNAVAILABLE']);
      expect(values(await readAll(store, 'chat:held'))).toEqual(['before']);
      expect(values(await readAll(store, 'chat:free'))).toEqual(['before', 'good 1', 'good 2']);
      const after = await store.append([req('chat:held', 'after')]);
      expect(after[0]?.message.offset).toBe(2);
    });

    it('answers ping, and refuses every call after close', async () => {
      const store = await open();
      await store.ping();
      await store.close();
      await store.close();
      expect(await rejection(store.append([req('chat:z', 1)]))).toBe('STORE_UNAVAILABLE');
      expect(await rejection(store.range('chat:z', { limit: 1 }))).toBe('STORE_UNAVAILABLE');
      expect(await rejection(store.ping())).toBe('STORE_UNAVAILABLE');
    });
  });
}
