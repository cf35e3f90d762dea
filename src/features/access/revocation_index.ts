import type { TokenIdentity } from '../../core/auth.js';
import type { Revocation } from '../../stores/revocations.js';

/** Why a token is refused, or undefined when it is not. */
export type RevocationReason = 'user blocked' | 'token revoked';

interface Entry {
  readonly revocation: Revocation;
  /** The index's clock when the entry was set: a reload started earlier keeps it. */
  readonly stamp: number;
}

/**
 * The revocations an instance knows, in memory: every connect and token refresh is checked
 * against them, so a check is a few map lookups and never a query. Expired entries are
 * ignored at once and dropped on the next reload.
 */
export class RevocationIndex {
  private readonly entries = new Map<string, Entry>();
  private clock = 0;

  get size(): number {
    return this.entries.size;
  }

  put(revocation: Revocation): void {
    this.entries.set(keyOf(revocation.kind, revocation.key), { revocation, stamp: ++this.clock });
  }

  delete(kind: Revocation['kind'], key: string): void {
    // A tombstone until the next reload: a reload started before the removal must not bring it back.
    this.entries.set(keyOf(kind, key), { revocation: { kind, key, issuedBefore: 0, expiresAt: -1 }, stamp: ++this.clock });
  }

  /** A mark to pass to `replace` when a reload starts. */
  mark(): number {
    return this.clock;
  }

  /** Replaces the entries with a reload's, keeping those set or removed after `mark`. */
  replace(loaded: readonly Revocation[], mark: number): void {
    const recent = [...this.entries.values()].filter((e) => e.stamp > mark);
    this.entries.clear();
    for (const revocation of loaded) this.entries.set(keyOf(revocation.kind, revocation.key), { revocation, stamp: 0 });
    for (const entry of recent) this.entries.set(keyOf(entry.revocation.kind, entry.revocation.key), entry);
  }

  /** Why a connection with this token is refused at `now` (Unix ms), or undefined. */
  reason(token: TokenIdentity, now: number): RevocationReason | undefined {
    if (token.user !== '' && this.live(keyOf('user', token.user), now)) return 'user blocked';
    if (token.tokenId !== undefined && this.live(keyOf('token', token.tokenId), now)) return 'token revoked';
    if (token.user !== '') {
      const before = this.live(keyOf('user_tokens', token.user), now);
      // A token without `iat` cannot show it came after the invalidation.
      if (before && (token.issuedAt === undefined || token.issuedAt < before.issuedBefore)) return 'token revoked';
    }
    return undefined;
  }

  /**
   * Why a subscription token of `user` for `channel` issued at `issuedAt` (Unix ms; undefined:
   * no `iat`, counted as issued before) is refused at `now`, or undefined.
   */
  channelReason(user: string, channel: string, issuedAt: number | undefined, now: number): RevocationReason | undefined {
    const before = this.live(keyOf('channel_tokens', channelTokensKey(user, channel)), now);
    return before && (issuedAt === undefined || issuedAt < before.issuedBefore) ? 'token revoked' : undefined;
  }

  private live(key: string, now: number): Revocation | undefined {
    const revocation = this.entries.get(key)?.revocation;
    if (!revocation || revocation.expiresAt < 0 || (revocation.expiresAt > 0 && revocation.expiresAt <= now)) return undefined;
    return revocation;
  }
}

function keyOf(kind: Revocation['kind'], key: string): string {
  return `${kind}\u0000${key}`;
}

/** The key of a `channel_tokens` revocation: unambiguous whatever the user id holds. */
export function channelTokensKey(user: string, channel: string): string {
  return JSON.stringify([user, channel]);
}

/** The user and channel of a `channel_tokens` key; undefined when it is not one. */
export function parseChannelTokensKey(key: string): { user: string; channel: string } | undefined {
  let pair: unknown;
  try {
    pair = JSON.parse(key);
  } catch {
    return undefined;
  }
  return Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string' ? { user: pair[0], channel: pair[1] } : undefined;
}
