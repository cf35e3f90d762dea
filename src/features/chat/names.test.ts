import { describe, expect, it } from 'vitest';
import { RelaisError } from '../../core/errors.js';
import { checkUserId, dmChannel, dmMembers, qualifyRoom, statusChannel } from './names.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof RelaisError ? err.code : 'not a RelaisError';
  }
  return undefined;
};

describe('chat names', () => {
  it('gives a bare room name the room namespace and keeps a qualified one', () => {
    expect(qualifyRoom('team', 'room')).toBe('room:team');
    expect(qualifyRoom('room:team', 'room')).toBe('room:team');
    expect(qualifyRoom('project:x', 'room')).toBe('project:x');
  });

  it('names a conversation by its two users sorted, the same from either side', () => {
    expect(dmChannel('dm', 'bob', 'alice')).toBe('dm:alice,bob');
    expect(dmChannel('dm', 'alice', 'bob')).toBe('dm:alice,bob');
    expect(dmChannel('dm', 'alice', 'alice')).toBe('dm:alice,alice');
    expect(code(() => dmChannel('dm', 'a,b', 'c'))).toBe('BAD_REQUEST');
    expect(code(() => dmChannel('dm', '', 'c'))).toBe('BAD_REQUEST');
    expect(code(() => dmChannel('dm', 'a b', 'c'))).toBe('BAD_REQUEST');
  });

  it('reads the two users of a conversation only from a well-formed name', () => {
    expect(dmMembers('alice,bob')).toEqual(['alice', 'bob']);
    expect(dmMembers('alice,alice')).toEqual(['alice', 'alice']);
    for (const bad of ['bob,alice', 'alice', 'alice,', ',bob', 'a,b,c', '', `${'x'.repeat(101)},y`]) expect(dmMembers(bad)).toBeUndefined();
  });

  it('accepts user ids a channel name can carry, up to 100 characters', () => {
    expect(checkUserId('user', 'alice@example.com')).toBe('alice@example.com');
    for (const bad of ['', 'a b', "o'brien", 'x;y', 'x'.repeat(101), 42, undefined]) expect(code(() => checkUserId('user', bad))).toBe('BAD_REQUEST');
    expect(statusChannel('status', 'alice')).toBe('status:alice');
  });
});
