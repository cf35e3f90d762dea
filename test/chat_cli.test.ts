/**
 * `relais chat` with the durable chat (issue 10, item 9): real `relais chat` processes driven
 * through stdin/stdout against a real Relais process. Rooms with members are created and
 * joined from the terminal, show their last 50 messages on join, page further back with
 * /history, list with unread counts in /rooms, and /dm opens a conversation. Every step waits
 * for the output it depends on, with a deadline.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CliProcess, cliEnv } from './helpers/cli.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const TEST_TIMEOUT_MS = 90_000;

let relais: RelaisProcess;
const children: CliProcess[] = [];

beforeAll(async () => {
  relais = await startRelais();
});

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.kill()));
});

afterAll(async () => {
  await relais.stop();
});

function chat(user: string): CliProcess {
  const child = new CliProcess(`chat ${user}`, ['chat', '--user', user, '--url', relais.wsUrl], cliEnv(relais));
  children.push(child);
  return child;
}

const isMessage = (line: string): boolean => /^(\[[^\]]+\] )?\[\d+\] /.test(line);
const messages = (c: CliProcess): string[] => c.stdout.filter(isMessage);

describe('relais chat with rooms and conversations', () => {
  it('/create and /invite a room; /join shows its last 50, /history pages back, /rooms counts what was not shown', { timeout: TEST_TIMEOUT_MS }, async () => {
    const alice = chat('alice');
    alice.send('/create team The team');
    await alice.waitFor('* created room:team');
    await alice.waitFor('* you joined room:team');
    alice.send('/invite bob');
    await alice.waitFor('* bob added to room:team');
    for (let n = 1; n <= 55; n++) await relais.call('publish', { channel: 'room:team', data: { text: `m${n}` } });
    await alice.waitFor('[55] (server): m55');

    const bob = chat('bob');
    bob.send('/rooms');
    await bob.waitFor('*   room:team (The team): 55 unread; last [55] (server): m55');
    bob.send('/join room:team');
    await bob.waitFor('[55] (server): m55');
    const joined = bob.stdout.indexOf('* you joined room:team');
    expect(joined).toBeGreaterThan(-1);
    expect(messages(bob)).toEqual(Array.from({ length: 50 }, (_, i) => `[${i + 6}] (server): m${i + 6}`));
    expect(bob.stdout.indexOf('[6] (server): m6')).toBeGreaterThan(joined);

    bob.send('/history');
    await bob.waitFor('* history of room:team: 5 messages');
    await bob.waitFor('[5] (server): m5');
    expect(messages(bob).slice(50)).toEqual(['[1] (server): m1', '[2] (server): m2', '[3] (server): m3', '[4] (server): m4', '[5] (server): m5']);
    bob.send('/history');
    await bob.waitFor('* no earlier messages in room:team');

    // What bob was shown is marked read: his other sessions count nothing unread.
    const bobElsewhere = chat('bob');
    await waitForLine(bobElsewhere, '/rooms', '*   room:team (The team): no unread; last [55] (server): m55');

    const carol = chat('carol');
    carol.send('/join room:team');
    await carol.waitFor(/^! could not join room:team: .*103/);
    carol.send('/invite carol room:team');
    await carol.waitFor(/^! .*103/);
  });

  it('/dm opens the conversation with a user: the other side is told, and its messages show there once opened', { timeout: TEST_TIMEOUT_MS }, async () => {
    const dan = chat('dan');
    const eve = chat('eve');
    await dan.waitFor('* connected');
    await eve.waitFor('* connected');
    dan.send('/dm eve');
    await dan.waitFor('* you joined @eve');
    dan.send('hello eve');
    await dan.waitFor('[1] dan: hello eve');
    await eve.waitFor('* @dan: hello eve (/dm dan to answer)');

    eve.send('/dm dan');
    await eve.waitFor('* you joined @dan');
    await eve.waitFor('[1] dan: hello eve');
    eve.send('hi dan');
    await dan.waitFor('[2] eve: hi dan');
    await eve.waitFor('[2] eve: hi dan');
    expect(messages(eve)).toEqual(['[1] dan: hello eve', '[2] eve: hi dan']);
    // Open in both: no notice on the personal channel any more.
    expect(dan.stdout.filter((l) => l.startsWith('* @eve:'))).toEqual([]);
    eve.send('/rooms');
    await eve.waitFor(/^\* {3}@dan: .*last \[2\] eve: hi dan$/);
  });
});

/** Sends `command` until `line` shows (what it reports may take a moment to settle), with a deadline. */
async function waitForLine(c: CliProcess, command: string, line: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    c.send(command);
    try {
      await c.waitFor(line, 1000);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
  }
}
