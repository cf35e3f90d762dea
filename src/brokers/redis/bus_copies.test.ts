import { describe, expect, it } from 'vitest';
import { BusCopies } from './bus_copies.js';

/** Feeds events as ioredis emits them; returns the ones handed on (every one is wanted here). */
function handled(events: readonly (readonly [pattern: string | undefined, bus: string, text: string])[]): string[] {
  const copies = new BusCopies();
  const out: string[] = [];
  for (const [pattern, bus, text] of events) {
    if (copies.isHandledCopy(pattern, bus, text)) continue;
    copies.markHandled();
    out.push(`${bus}:${text}`);
  }
  return out;
}

describe('BusCopies', () => {
  it('hands on one copy of a publish sent as message then pmessages', () => {
    expect(
      handled([
        [undefined, 'a', 'x'],
        ['p1', 'a', 'x'],
        ['p2', 'a', 'x'],
        ['p1', 'b', 'y'],
        ['p2', 'b', 'y'],
      ]),
    ).toEqual(['a:x', 'b:y']);
  });

  it('keeps identical publishes back to back apart', () => {
    // Subscribed: every publish starts with its message.
    expect(
      handled([
        [undefined, 'a', 'x'],
        ['p1', 'a', 'x'],
        [undefined, 'a', 'x'],
        ['p1', 'a', 'x'],
      ]),
    ).toEqual(['a:x', 'a:x']);
    // Patterns only, in whatever order Redis walks them: a pattern sends one copy per publish.
    expect(
      handled([
        ['p1', 'a', 'x'],
        ['p2', 'a', 'x'],
        ['p2', 'a', 'x'],
        ['p1', 'a', 'x'],
        ['p1', 'a', 'x'],
      ]),
    ).toEqual(['a:x', 'a:x', 'a:x']);
  });

  it('hands on a later copy when the first one was not wanted', () => {
    const copies = new BusCopies();
    expect(copies.isHandledCopy(undefined, 'a', 'x')).toBe(false); // unsubscribed meanwhile: not handled
    expect(copies.isHandledCopy('p1', 'a', 'x')).toBe(false); // the pattern still wants it
    copies.markHandled();
    expect(copies.isHandledCopy('p2', 'a', 'x')).toBe(true);
    copies.reset();
    expect(copies.isHandledCopy('p2', 'a', 'x')).toBe(false);
  });
});
