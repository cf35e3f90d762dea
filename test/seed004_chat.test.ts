/**
 * The four manual tests of seed 004 ("Test du système Pub/Sub") as end-to-end tests: real
 * `relais chat` processes driven through stdin/stdout against a real Relais process. Then
 * `relais publish`, `relais subscribe` and `relais token` against the same server.
 *
 * Every step waits for the output it depends on ("* you joined", a message line) before the
 * next one, with a deadline; every child process is killed after each test.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sdkClient, sleep, waitFor, type SdkClient } from './helpers/clients.js';
import { freePort } from './helpers/buses.js';
import { CliProcess, cliEnv, runCli } from './helpers/cli.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const TEST_TIMEOUT_MS = 90_000;
/** Quiet time after which a message that should not arrive is taken not to have arrived. */
const SETTLE_MS = 500;

let relais: RelaisProcess;
const children: CliProcess[] = [];
const sdkClients: SdkClient[] = [];

beforeAll(async () => {
  relais = await startRelais();
});

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.kill()));
  for (const c of sdkClients.splice(0)) c.close();
});

afterAll(async () => {
  await relais.stop();
});

/** A `relais chat` process for `user`, talking to the test server. */
function chat(user: string): CliProcess {
  const child = new CliProcess(`chat ${user}`, ['chat', '--user', user, '--url', relais.wsUrl], cliEnv(relais));
  children.push(child);
  return child;
}

async function join(client: CliProcess, room: string): Promise<void> {
  client.send(`/join ${room}`);
  await client.waitFor(`* you joined ${room}`);
}

const isMessage = (line: string): boolean => /^(\[[^\]]+\] )?\[\d+\] /.test(line);

describe('seed 004: the terminal chat', () => {
  it('Test 1: basic pub/sub, and /history shows earlier messages to a late joiner', { timeout: TEST_TIMEOUT_MS }, async () => {
    const [c1, c2, c3] = [chat('client1'), chat('client2'), chat('client3')] as const;
    await join(c1, 'general');
    await join(c2, 'general');
    await c1.waitFor('* client2 joined general');

    c1.send('Hello everyone!');
    await c2.waitFor('[1] client1: Hello everyone!');
    await c1.waitFor('[1] client1: Hello everyone!');
    c2.send('Hi client1');
    await c1.waitFor('[2] client2: Hi client1');

    await join(c3, 'general');
    await c1.waitFor('* client3 joined general');
    c3.send('/history general');
    await c3.waitFor('[2] client2: Hi client1');

    // Joining shows no backlog: the only message lines client 3 has are the history, oldest first.
    const header = c3.stdout.indexOf('* history of general: 2 messages');
    expect(header).toBeGreaterThan(c3.stdout.indexOf('* you joined general'));
    expect(c3.stdout.filter(isMessage)).toEqual(['[1] client1: Hello everyone!', '[2] client2: Hi client1']);
    expect(c3.stdout.slice(header + 1, header + 3)).toEqual(['[1] client1: Hello everyone!', '[2] client2: Hi client1']);
    expect(c2.stdout.filter(isMessage)).toEqual(['[1] client1: Hello everyone!', '[2] client2: Hi client1']);
  });

  it('Test 2: several rooms are isolated; a client in both receives both', { timeout: TEST_TIMEOUT_MS }, async () => {
    const [c1, c2, c3] = [chat('client1'), chat('client2'), chat('client3')] as const;
    await join(c1, 'sports');
    await join(c2, 'news');

    c1.send('Game starting!');
    await c1.waitFor('[1] client1: Game starting!');
    c2.send('Breaking news!');
    await c2.waitFor('[1] client2: Breaking news!');

    await join(c3, 'sports');
    await join(c3, 'news');
    c1.send('Goal!');
    c2.send('Weather: sunny');
    await c3.waitFor('[sports] [2] client1: Goal!');
    await c3.waitFor('[news] [2] client2: Weather: sunny');
    await c1.waitFor('[2] client1: Goal!');
    await c2.waitFor('[2] client2: Weather: sunny');
    await sleep(SETTLE_MS);

    expect(c1.stdout.filter(isMessage)).toEqual(['[1] client1: Game starting!', '[2] client1: Goal!']);
    expect(c2.stdout.filter(isMessage)).toEqual(['[1] client2: Breaking news!', '[2] client2: Weather: sunny']);
    // Client 3 gets what was said after it joined, in both rooms, and nothing from before.
    expect(c3.stdout.filter(isMessage).sort()).toEqual(['[news] [2] client2: Weather: sunny', '[sports] [2] client1: Goal!']);
  });

  it('Test 3: messages sent rapidly show [1], [2], [3] in order at every client', { timeout: TEST_TIMEOUT_MS }, async () => {
    const clients = [chat('client1'), chat('client2'), chat('client3')] as const;
    for (const c of clients) await join(c, 'ordering');
    const [sender] = clients;
    await sender.waitFor('* client3 joined ordering');

    sender.send('msg1', 'msg2', 'msg3'); // one write: the three lines arrive together
    const expected = ['[1] client1: msg1', '[2] client1: msg2', '[3] client1: msg3'];
    for (const c of clients) {
      await c.waitFor('[3] client1: msg3');
      expect(c.stdout.filter(isMessage)).toEqual(expected);
    }
  });

  it('Test 4: presence: each sees the other; a client stopped with Ctrl+C or killed is seen leaving', { timeout: TEST_TIMEOUT_MS }, async () => {
    const c1 = chat('client1');
    const c2 = chat('client2');
    await join(c1, 'lobby');
    await join(c2, 'lobby');
    await c1.waitFor('* client2 joined lobby');
    await c2.waitFor('* in lobby: client1, client2');
    c1.send('/who');
    await c1.waitForCount((l) => l === '* in lobby: client1, client2', 1);

    c2.signal('SIGINT');
    expect((await c2.waitExit()).code).toBe(0);
    await c1.waitFor('* client2 left lobby');

    const c3 = chat('client3');
    await join(c3, 'lobby');
    await c1.waitFor('* client3 joined lobby');
    c3.signal('SIGKILL');
    await c1.waitFor('* client3 left lobby');
    c1.send('/who lobby');
    // The first such line came when client 1 joined, alone; the second answers this /who.
    await c1.waitForCount((l) => l === '* in lobby: client1', 2);
  });

  it('ends on /quit and at the end of input once what was typed before is sent', { timeout: TEST_TIMEOUT_MS }, async () => {
    const watcher = chat('watcher');
    await join(watcher, 'piped');
    const piped = chat('piper');
    piped.send('/join piped', 'one', 'two', 'three');
    piped.endInput();
    expect((await piped.waitExit()).code).toBe(0);
    await watcher.waitFor('[3] piper: three');
    expect(watcher.stdout.filter(isMessage)).toEqual(['[1] piper: one', '[2] piper: two', '[3] piper: three']);

    const quitter = chat('quitter');
    await join(quitter, 'piped');
    quitter.send('bye', '/quit', 'never said');
    expect((await quitter.waitExit()).code).toBe(0);
    await watcher.waitFor('* quitter left piped');
    await watcher.waitFor('[4] quitter: bye');
    await sleep(SETTLE_MS);
    expect(watcher.stdout.some((l) => l.includes('never said'))).toBe(false);
  });

  it('after losing its connection, a chat client shows what was said meanwhile, once each, in order', { timeout: TEST_TIMEOUT_MS }, async () => {
    const talker = chat('talker');
    const away = chat('away');
    await join(talker, 'recovery');
    await join(away, 'recovery');
    talker.send('before');
    await away.waitFor('[1] talker: before');

    await relais.call('disconnect', { user: 'away', disconnect: { code: 3011, reason: 'x' } });
    await away.waitFor(/^\* connection lost/);
    talker.send('while away 1', 'while away 2', 'while away 3');
    await talker.waitFor('[4] talker: while away 3');
    await away.waitFor('* reconnected');
    talker.send('after');
    await away.waitFor('[5] talker: after');
    await sleep(SETTLE_MS);
    expect(away.stdout.filter(isMessage)).toEqual([
      '[1] talker: before',
      '[2] talker: while away 1',
      '[3] talker: while away 2',
      '[4] talker: while away 3',
      '[5] talker: after',
    ]);
    expect(away.stdout.some((l) => l.startsWith('* back in recovery'))).toBe(false);
  });

  it('answers bad commands and input without a room with a message, and keeps going', { timeout: TEST_TIMEOUT_MS }, async () => {
    const c = chat('client1');
    c.send('hello?', '/frobnicate', '/join two words', '/leave nowhere');
    await c.waitFor('! join a room first: /join <room>');
    await c.waitFor('! unknown command /frobnicate (try /help)');
    await c.waitFor(/^! invalid room name "two words"/);
    await c.waitFor('! you are not in nowhere');
    await join(c, 'after-errors');
    c.send('still here');
    await c.waitFor('[1] client1: still here');
  });
});

describe('relais publish', () => {
  it('publishes through the HTTP API: an SDK subscriber receives it and the result is printed', { timeout: TEST_TIMEOUT_MS }, async () => {
    const sdk = await sdkClient(relais, 'reader');
    sdkClients.push(sdk);
    await sdk.subscribe('chat:cli-publish').ready(10_000);

    const first = await runCli(['publish', 'chat:cli-publish', '{"text":"from the CLI"}'], cliEnv(relais));
    expect(first.code).toBe(0);
    const result = JSON.parse(first.stdout.join('\n')) as { offset: number; epoch: string };
    expect(result.offset).toBe(1);
    expect(typeof result.epoch).toBe('string');

    // --url wins over RELAIS_URL; the WebSocket form of the URL is accepted too.
    const second = await runCli(['publish', 'chat:cli-publish', '[1,2]', '--url', relais.wsUrl], cliEnv(relais, { RELAIS_URL: 'http://127.0.0.1:9' }));
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout.join('\n'))).toEqual({ offset: 2, epoch: result.epoch });

    await waitFor(() => sdk.pubs('chat:cli-publish').length === 2, 10_000, 'both publications');
    expect(sdk.pubs('chat:cli-publish').map((p): unknown => p.data)).toEqual([{ text: 'from the CLI' }, [1, 2]]);
    expect(sdk.pubs('chat:cli-publish').map((p) => p.offset)).toEqual([1, 2]);
  });

  it('fails with a message and a non-zero exit on bad JSON, an API error, or no server', { timeout: TEST_TIMEOUT_MS }, async () => {
    const badJson = await runCli(['publish', 'chat:cli-publish', '{not json'], cliEnv(relais));
    expect(badJson.code).not.toBe(0);
    expect(badJson.stdout).toEqual([]);
    expect(badJson.stderr.join('\n')).toMatch(/not valid JSON/);

    const wrongKey = await runCli(['publish', 'chat:cli-publish', '{}'], cliEnv(relais, { RELAIS_API_KEY: 'wrong-key' }));
    expect(wrongKey.code).not.toBe(0);
    expect(wrongKey.stderr.join('\n')).toMatch(/HTTP 401, error 101\): .*API key/);

    const unknownNamespace = await runCli(['publish', 'nowhere:room', '{}'], cliEnv(relais));
    expect(unknownNamespace.code).not.toBe(0);
    expect(unknownNamespace.stderr.join('\n')).toMatch(/error 102\): unknown namespace "nowhere"/);

    const port = await freePort();
    const unreachable = await runCli(['publish', 'chat:cli-publish', '{}', '--url', `http://127.0.0.1:${port}`], cliEnv(relais));
    expect(unreachable.code).not.toBe(0);
    expect(unreachable.stderr.join('\n')).toMatch(new RegExp(`cannot reach Relais at http://127.0.0.1:${port}: .*ECONNREFUSED`));

    const usage = await runCli(['publish', 'chat:cli-publish'], cliEnv(relais));
    expect(usage.code).not.toBe(0);
    expect(usage.stderr.join('\n')).toMatch(/usage: relais publish <channel> <json>/);
  });
});

describe('relais subscribe', () => {
  interface Line {
    channel: string;
    offset: number;
    data: { n: number };
    info?: { user: string };
  }

  it('prints JSON lines, and after a forced disconnect every publication exactly once, in order', { timeout: TEST_TIMEOUT_MS }, async () => {
    const channel = 'chat:cli-subscribe';
    const sub = new CliProcess('subscribe', ['subscribe', channel, '--user', 'cli-watcher', '--url', relais.httpUrl], cliEnv(relais));
    children.push(sub);
    await sub.waitForStderr(/^relais subscribe: subscribed to chat:cli-subscribe at offset 0/);

    for (let n = 1; n <= 3; n++) await relais.call('publish', { channel, data: { n } });
    const sdk = await sdkClient(relais, 'talker');
    sdkClients.push(sdk);
    await sdk.centrifuge.publish(channel, { n: 4 });
    await sub.waitForCount((l) => l.startsWith('{'), 4);
    const first = sub.stdout.map((l) => JSON.parse(l) as Line);
    expect(first.map((l) => [l.channel, l.offset, l.data.n])).toEqual([1, 2, 3, 4].map((n) => [channel, n, n]));
    expect(first[0]?.info).toBeUndefined();
    expect(first[3]?.info?.user).toBe('talker');

    await relais.call('disconnect', { user: 'cli-watcher', disconnect: { code: 3011, reason: 'x' } });
    await sub.waitForStderr(/connection lost .*reconnecting/);
    await relais.call('publish', { channel, data: { n: 5 } });
    // The SDK waits at least 500 ms before reconnecting: n = 5 is (almost surely) published
    // while the subscriber is away. The server says whether it was.
    const active = await relais.call<{ channels: Record<string, unknown> }>('channels', { pattern: channel });
    const missedOne = active.channels[channel] === undefined;
    for (let n = 6; n <= 60; n++) await relais.call('publish', { channel, data: { n } });

    const resubscribed = await sub.waitForStderr(/resubscribed to chat:cli-subscribe /);
    expect(resubscribed).toMatch(missedOne ? /: missed publications recovered$/ : /: (missed publications recovered|nothing was missed)$/);
    await sub.waitForCount((l) => l.startsWith('{'), 60);
    await relais.call('publish', { channel, data: { n: 61 } });
    await sub.waitForCount((l) => l.startsWith('{'), 61);
    await sleep(SETTLE_MS);
    const all = sub.stdout.map((l) => JSON.parse(l) as Line);
    expect(all.map((l) => l.offset)).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
    expect(all.map((l) => l.data.n)).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));

    sub.signal('SIGINT');
    expect((await sub.waitExit()).code).toBe(0);
  });

  it('exits non-zero with a message when the subscription is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
    const sub = new CliProcess('subscribe', ['subscribe', 'user:someone-else', '--user', 'intruder', '--url', relais.wsUrl], cliEnv(relais));
    children.push(sub);
    const { code } = await sub.waitExit(30_000);
    expect(code).toBe(1);
    expect(sub.stderr.join('\n')).toMatch(/unsubscribed from user:someone-else: .*\(code 103\)/);
  });
});

describe('relais token', () => {
  it('mints a connection token the server accepts, whose user and info reach the publications', { timeout: TEST_TIMEOUT_MS }, async () => {
    const minted = await runCli(['token', '--user', 'alice', '--info', '{"name":"Alice"}'], cliEnv(relais));
    expect(minted.code).toBe(0);
    expect(minted.stdout).toHaveLength(1);
    const token = minted.stdout[0] ?? '';
    expect(token.split('.')).toHaveLength(3);

    const reader = await sdkClient(relais, 'reader');
    sdkClients.push(reader);
    await reader.subscribe('chat:cli-token').ready(10_000);
    const alice = await sdkClient(relais, 'ignored', { token });
    sdkClients.push(alice);
    await alice.centrifuge.publish('chat:cli-token', { text: 'signed by the CLI' });
    await waitFor(() => reader.pubs('chat:cli-token').length === 1, 10_000, 'the publication');
    const info = reader.pubs('chat:cli-token')[0]?.info;
    expect(info?.user).toBe('alice');
    expect(info?.connInfo).toEqual({ name: 'Alice' });
  });

  it('refuses a token signed with another secret, and fails with a message without --user or with bad --info', { timeout: TEST_TIMEOUT_MS }, async () => {
    const foreign = await runCli(['token', '--user', 'mallory'], cliEnv(relais, { RELAIS_TOKEN_SECRET: 'not-the-server-secret' }));
    expect(foreign.code).toBe(0);
    await expect(sdkClient(relais, 'ignored', { token: foreign.stdout[0] ?? '' })).rejects.toThrow();

    const noUser = await runCli(['token'], cliEnv(relais));
    expect(noUser.code).not.toBe(0);
    expect(noUser.stderr.join('\n')).toMatch(/--user <id> is required/);
    const badInfo = await runCli(['token', '--user', 'bob', '--info', '{nope'], cliEnv(relais));
    expect(badInfo.code).not.toBe(0);
    expect(badInfo.stderr.join('\n')).toMatch(/--info must be JSON/);
  });
});
