/**
 * User status (seed 004's state diagram): online, away after a time without activity, offline
 * once no connection is left. No I/O here: LocalUsers follows the users connected to one node,
 * and clusterStatus combines what every node says of a user.
 */

export type UserStatus = 'online' | 'away' | 'offline';

/** What one node says of a user it has connections of. */
export interface NodeUserState {
  readonly state: 'online' | 'away';
  /** The user's last activity on that node, Unix ms. */
  readonly activeAt: number;
}

/** A user's status across the cluster. */
export interface ClusterStatus {
  readonly status: UserStatus;
  /** For `away`: the last activity anywhere, Unix ms. */
  readonly activeAt?: number;
}

/**
 * Online when any node has the user online (active within away_after); away when every node
 * that has connections of the user finds them idle; offline when no node has any.
 */
export function clusterStatus(states: Iterable<NodeUserState>): ClusterStatus {
  let any = false;
  let activeAt = 0;
  for (const s of states) {
    if (s.state === 'online') return { status: 'online' };
    any = true;
    activeAt = Math.max(activeAt, s.activeAt);
  }
  return any ? { status: 'away', activeAt } : { status: 'offline' };
}

/** A change of what this node says of a user: its new state, or undefined once it has no connection of them. */
export interface LocalChange {
  readonly user: string;
  readonly state: NodeUserState | undefined;
}

interface LocalUser {
  connections: number;
  activeAt: number;
  state: 'online' | 'away';
}

/** The users connected to this node: connection counts, last activity, online or away. */
export class LocalUsers {
  private readonly users = new Map<string, LocalUser>();

  constructor(private readonly awayAfterMs: number) {}

  get size(): number {
    return this.users.size;
  }

  /** Every user with a connection here, with what this node says of them. */
  *entries(): Iterable<[string, NodeUserState]> {
    for (const [user, u] of this.users) yield [user, { state: u.state, activeAt: u.activeAt }];
  }

  state(user: string): NodeUserState | undefined {
    const u = this.users.get(user);
    return u ? { state: u.state, activeAt: u.activeAt } : undefined;
  }

  /** A connection opened: activity. A change when the user had none here, or was away. */
  connected(user: string, now: number): LocalChange | undefined {
    const u = this.users.get(user);
    if (u) {
      u.connections++;
      return this.active(user, now);
    }
    this.users.set(user, { connections: 1, activeAt: now, state: 'online' });
    return { user, state: { state: 'online', activeAt: now } };
  }

  /** A connection closed. A change (undefined state) when it was the user's last here. */
  disconnected(user: string): LocalChange | undefined {
    const u = this.users.get(user);
    if (!u) return undefined;
    u.connections--;
    if (u.connections > 0) return undefined;
    this.users.delete(user);
    return { user, state: undefined };
  }

  /** A command of the user. A change when they were away. */
  active(user: string, now: number): LocalChange | undefined {
    const u = this.users.get(user);
    if (!u) return undefined;
    if (now > u.activeAt) u.activeAt = now;
    if (u.state === 'online') return undefined;
    u.state = 'online';
    return { user, state: { state: 'online', activeAt: u.activeAt } };
  }

  /** Users online here without activity for away_after: they become away. */
  idle(now: number): LocalChange[] {
    const changes: LocalChange[] = [];
    for (const [user, u] of this.users) {
      if (u.state !== 'online' || now - u.activeAt < this.awayAfterMs) continue;
      u.state = 'away';
      changes.push({ user, state: { state: 'away', activeAt: u.activeAt } });
    }
    return changes;
  }
}
