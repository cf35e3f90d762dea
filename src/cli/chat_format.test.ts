import { describe, expect, it } from 'vitest';
import { formatMessage, formatPresence, messageText, parseInput, senderOf } from './chat_format.js';

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

  it('lists users once each, sorted', () => {
    expect(formatPresence('lobby', ['bob', 'alice', 'bob'])).toBe('* in lobby: alice, bob (3 connections)');
    expect(formatPresence('lobby', ['alice'])).toBe('* in lobby: alice');
    expect(formatPresence('lobby', [])).toBe('* nobody in lobby');
  });
});
