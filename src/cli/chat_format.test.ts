import { describe, expect, it } from 'vitest';
import { conversationName, formatMessage, formatPresence, formatRooms, messageText, parseInput, senderOf } from './chat_format.js';

describe('chat input', () => {
  it('parses commands, text and the // escape', () => {
    expect(parseInput('/join general')).toEqual({ kind: 'join', room: 'general' });
    expect(parseInput('  /JOIN   general ')).toEqual({ kind: 'join', room: 'general' });
    expect(parseInput('/leave')).toEqual({ kind: 'leave', room: undefined });
    expect(parseInput('/history news')).toEqual({ kind: 'history', room: 'news' });
    expect(parseInput('/who')).toEqual({ kind: 'who', room: undefined });
    expect(parseInput('/quit')).toEqual({ kind: 'quit' });
    expect(parseInput('/help')).toEqual({ kind: 'help' });
    expect(parseInput('/nope x')).toEqual({ kind: 'unknown', command: '/nope' });
    expect(parseInput('   ')).toEqual({ kind: 'empty' });
    expect(parseInput('Hello everyone!')).toEqual({ kind: 'say', text: 'Hello everyone!' });
    expect(parseInput('//shrug')).toEqual({ kind: 'say', text: '/shrug' });
    expect(parseInput('/create team The team')).toEqual({ kind: 'create', room: 'team', title: 'The team' });
    expect(parseInput('/create')).toEqual({ kind: 'create', room: undefined, title: undefined });
    expect(parseInput('/invite bob')).toEqual({ kind: 'invite', user: 'bob', room: undefined });
    expect(parseInput('/invite bob room:team')).toEqual({ kind: 'invite', user: 'bob', room: 'room:team' });
    expect(parseInput('/dm alice')).toEqual({ kind: 'dm', user: 'alice' });
    expect(parseInput('/rooms')).toEqual({ kind: 'rooms' });
  });
});

describe('chat display', () => {
  it('formats messages with the room only when several rooms are joined', () => {
    const message = { room: 'general', offset: 3, sender: 'alice', text: 'hi' };
    expect(formatMessage(message, false)).toBe('[3] alice: hi');
    expect(formatMessage(message, true)).toBe('[general] [3] alice: hi');
    expect(formatMessage({ ...message, offset: undefined }, false)).toBe('[-] alice: hi');
  });

  it('takes the text of chat messages and shows other data as JSON', () => {
    expect(messageText({ text: 'hi' })).toBe('hi');
    expect(messageText({ n: 1 })).toBe('{"n":1}');
  });

  it('names the sender from the publication info only', () => {
    expect(senderOf({ client: 'c', user: 'bob' })).toBe('bob');
    expect(senderOf({ client: 'c', user: '' })).toBe('(anonymous)');
    expect(senderOf(undefined)).toBe('(server)');
  });

  it('lists rooms with unread counts and last messages, conversations by the other user', () => {
    expect(
      formatRooms(
        [
          { room: 'room:team', title: 'Team', unread: 3, last_message: { offset: 5, data: { text: 'hi' }, info: { user: 'alice', client: 'c' } } },
          { room: 'dm:alice,bob', unread: 0 },
        ],
        'alice',
      ),
    ).toEqual(['* your rooms:', '*   room:team (Team): 3 unread; last [5] alice: hi', '*   @bob: no unread']);
    expect(formatRooms([], 'alice')).toEqual(['* no rooms yet: /create <name>, or /dm <user>']);
    expect(conversationName('dm:alice,bob', 'bob')).toBe('@alice');
    expect(conversationName('room:team', 'bob')).toBeUndefined();
  });

    it('lists users once each, sorted', () => {
    expect(formatPresence('lobby', ['bob', 'alice', 'bob'])).toBe('* in lobby: alice, bob (3 connections)');
    expect(formatPresence('lobby', ['alice'])).toBe('* in lobby: alice');
    expect(formatPresence('lobby', [])).toBe('* nobody in lobby');
  });
});
