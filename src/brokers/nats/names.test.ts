import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeToken, encodeToken, natsNames } from './names.js';

/** A token must be one NATS subject token and a valid JetStream KV key token. */
const TOKEN_RE = /^[A-Za-z0-9_/=-]+$/;

describe('channel tokens', () => {
  it('keeps plain names readable and escapes the rest', () => {
    expect(encodeToken('news')).toBe('news');
    expect(encodeToken('chat:room.1')).toBe('chat=3Aroom=2E1');
    expect(encodeToken('a=b')).toBe('a=3Db');
    expect(encodeToken('@alice,#1+~x/y-z_')).toBe('=40alice=2C=231=2B=7Ex/y-z_');
    expect(encodeToken('*')).toBe('=2A');
    expect(encodeToken('>')).toBe('=3E');
    expect(encodeToken('é')).toBe('=C3=A9');
  });

  it('round-trips every string into one safe token', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, unit: 'binary' }), (name) => {
        const token = encodeToken(name);
        expect(token).toMatch(TOKEN_RE);
        expect(decodeToken(token)).toBe(name);
      }),
      { numRuns: 2000 },
    );
  });

  it('gives distinct names distinct tokens', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (a, b) => {
        fc.pre(a !== b);
        expect(encodeToken(a)).not.toBe(encodeToken(b));
      }),
    );
  });

  it('refuses tokens it cannot have produced', () => {
    for (const bad of ['', 'a.b', 'a:b', '=4', '=zz', 'a=', '=FF', 'a b']) expect(decodeToken(bad)).toBeUndefined();
    expect(() => encodeToken('')).toThrow();
  });
});

describe('natsNames', () => {
  it('derives every subject, stream and bucket from the prefix', () => {
    const names = natsNames('relais');
    expect(names.fanOutSubject('chat:a')).toBe('relais.pub.chat=3Aa');
    expect(names.historySubject('chat:a')).toBe('relais.hist.chat=3Aa');
    expect(names.channelOfHistorySubject('relais.hist.chat=3Aa')).toBe('chat:a');
    expect(names.channelOfHistorySubject('other.hist.chat=3Aa')).toBeUndefined();
    expect(names.fanOutWildcard).toBe('relais.pub.*');
    expect(names.channelOfFanOutSubject('relais.pub.chat=3Aa')).toBe('chat:a');
    expect(names.channelOfFanOutSubject('relais.hist.chat=3Aa')).toBeUndefined();
    expect(names.channelOfFanOutSubject('relais.pub.a.b')).toBeUndefined();
    expect(names.historyStream).toBe('relais_HISTORY');
    expect(names.historySubjects).toBe('relais.hist.>');
    expect(names.controlSubject).toBe('relais.control');
    expect(names.presenceBucket).toBe('relais_PRESENCE');
  });

  it('refuses prefixes that are not one subject token', () => {
    for (const bad of ['', 'a.b', 'a*', 'a>', 'a b', 'x'.repeat(65)]) expect(() => natsNames(bad)).toThrow();
  });
});
