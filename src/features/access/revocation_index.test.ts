import { describe, expect, it } from 'vitest';
import { channelTokensKey, parseChannelTokensKey, RevocationIndex } from './revocation_index.js';

const NOW = 1_800_000_000_000;

describe('RevocationIndex', () => {
  it('refuses blocked users, revoked token ids and tokens issued before an invalidation, until expiry', () => {
    const index = new RevocationIndex();
    index.put({ kind: 'user', key: 'mallory', issuedBefore: 0, expiresAt: NOW + 1000 });
    index.put({ kind: 'token', key: 'jti-7', issuedBefore: 0, expiresAt: 0 });
    index.put({ kind: 'user_tokens', key: 'bob', issuedBefore: NOW, expiresAt: 0 });
    expect(index.reason({ user: 'mallory' }, NOW)).toBe('user blocked');
    expect(index.reason({ user: 'mallory' }, NOW + 1000)).toBeUndefined();
    expect(index.reason({ user: 'alice', tokenId: 'jti-7' }, NOW)).toBe('token revoked');
    expect(index.reason({ user: 'alice', tokenId: 'jti-8' }, NOW)).toBeUndefined();
    expect(index.reason({ user: 'bob', issuedAt: NOW - 1000 }, NOW)).toBe('token revoked');
    expect(index.reason({ user: 'bob' }, NOW)).toBe('token revoked');
    expect(index.reason({ user: 'bob', issuedAt: NOW }, NOW)).toBeUndefined();
    index.delete('user', 'mallory');
    expect(index.reason({ user: 'mallory' }, NOW)).toBeUndefined();
  });

  it('refuses subscription tokens of one user for one channel issued before an invalidation, and no others', () => {
    const index = new RevocationIndex();
    index.put({ kind: 'channel_tokens', key: channelTokensKey('erin', 'vault'), issuedBefore: NOW, expiresAt: NOW + 1000 });
    expect(index.channelReason('erin', 'vault', NOW - 1000, NOW)).toBe('token revoked');
    expect(index.channelReason('erin', 'vault', undefined, NOW)).toBe('token revoked');
    expect(index.channelReason('erin', 'vault', NOW, NOW)).toBeUndefined();
    expect(index.channelReason('erin', 'vault', NOW - 1000, NOW + 1000)).toBeUndefined();
    expect(index.channelReason('erin', 'other', NOW - 1000, NOW)).toBeUndefined();
    expect(index.channelReason('frank', 'vault', NOW - 1000, NOW)).toBeUndefined();
    // Connection tokens are not touched by a channel's invalidation.
    expect(index.reason({ user: 'erin', issuedAt: NOW - 1000 }, NOW)).toBeUndefined();
    expect(parseChannelTokensKey(channelTokensKey('a"b', 'vault'))).toEqual({ user: 'a"b', channel: 'vault' });
    expect(parseChannelTokensKey('not json')).toBeUndefined();
    expect(parseChannelTokensKey('["only"]')).toBeUndefined();
  });

  it('keeps what changed during a reload over the reload’s older rows', () => {
    const index = new RevocationIndex();
    index.put({ kind: 'user', key: 'eve', issuedBefore: 0, expiresAt: 0 });
    const mark = index.mark();
    index.put({ kind: 'user', key: 'mallory', issuedBefore: 0, expiresAt: 0 });
    index.delete('user', 'eve');
    index.replace([{ kind: 'user', key: 'eve', issuedBefore: 0, expiresAt: 0 }, { kind: 'user', key: 'trudy', issuedBefore: 0, expiresAt: 0 }], mark);
    expect(index.reason({ user: 'mallory' }, NOW)).toBe('user blocked');
    expect(index.reason({ user: 'eve' }, NOW)).toBeUndefined();
    expect(index.reason({ user: 'trudy' }, NOW)).toBe('user blocked');
  });
});
