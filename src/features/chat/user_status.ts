import type { Logger } from 'pino';
import { toJsonText, type JsonText } from '../../core/json.js';
import type { ConnectionObserver, Node } from '../../core/node.js';
import type { ClientInfo } from '../../core/publication.js';
import type { Store } from '../../stores/store.js';
import { statusChannel, type ChatNamespaces } from './names.js';
import { clusterStatus, LocalUsers, type ClusterStatus, type NodeUserState, type UserStatus } from './status_state.js';

/** How often a node looks for peers that stopped sending heartbeats. */
const PEER_CHECK_MS = 5_000;
/** A status change is published again while another node's change crossed it, at most this many times. */
const RECONCILE_ROUNDS = 3;
const BATCH = 256;

export interface UserStatusDeps {
  readonly node: Node;
  readonly store: Store;
  readonly namespaces: ChatNamespaces;
  /** chat.away_after, ms. */
  readonly awayAfterMs: number;
  /** Whether changes are published on the status channels (false when the status namespace is not configured for it). */
  readonly publish: boolean;
  readonly logger: Logger;
}

/** A user's status as the API and rpc answer it. */
export interface UserStatusView {
  readonly user: string;
  readonly status: UserStatus;
  /** Away: the last activity; offline: when last seen (absent for a user never seen). Unix ms. */
  readonly lastSeen?: number;
}

/**
 * User status across every connection and every node (seed 004's diagram: online, away,
 * offline with last seen).
 *
 * Each node follows the users connected to it (LocalUsers: activity is any client command but
 * pings and token refreshes) and says what it finds in a cluster-wide set per user,
 * `$status:<user>`, one entry per node, refreshed and expiring with presence_ttl (so a dead
 * node's entries go). The status is what those entries add up to (clusterStatus). A node
 * alone on the memory bus keeps no such entries: its own users' states are the status.
 *
 * Every change is published on `status:<user>` (bus history of 1: a watcher gets the latest on
 * subscribe). Nodes agree on one publication per change without a coordinator: a node that
 * changed its entry reads the entries and the channel's latest publication, and publishes
 * only when the two differ, with an idempotency key naming the change and the publication
 * it follows (`status:<status>:<epoch>:<offset>`): two nodes that saw the same change publish
 * it once. It then reads again, so that a change published while another node's crossed it
 * ends with the status the entries say.
 *
 * A node that stops sending heartbeats is taken for dead by the others: each reads the users
 * it had (`$status-node:<node>`), removes its entries and publishes what changes.
 */
export class UserStatusTracker implements ConnectionObserver {
  private readonly local: LocalUsers;
  private readonly dirty = new Set<string>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly timers: NodeJS.Timeout[] = [];
  private peers = new Set<string>();
  private stopped = false;

  constructor(private readonly deps: UserStatusDeps) {
    this.local = new LocalUsers(deps.awayAfterMs);
  }

  /** Follows the node's connections and starts the clocks: idle users, entry refresh, dead peers. */
  start(): void {
    this.deps.node.observeConnections(this);
    const idleEvery = Math.min(5_000, Math.max(100, Math.floor(this.deps.awayAfterMs / 4)));
    this.every(idleEvery, () => {
      for (const change of this.local.idle(Date.now())) this.schedule(change.user);
    });
    this.every(Math.max(1_000, Math.floor(this.deps.node.config.presence_ttl / 3)), () => void this.refresh());
    if (this.deps.node.distributed) this.every(PEER_CHECK_MS, () => void this.checkPeers());
  }

  /** Stops the clocks; entries left expire with presence_ttl. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
  }

  connected(info: ClientInfo): void {
    if (info.user !== '' && this.local.connected(info.user, Date.now())) this.schedule(info.user);
  }

  disconnected(info: ClientInfo): void {
    if (info.user !== '' && this.local.disconnected(info.user)) this.schedule(info.user);
  }

  active(info: ClientInfo, now: number): void {
    if (info.user !== '' && this.local.active(info.user, now)) this.schedule(info.user);
  }

  /** The status of each user, in the order asked. */
  async statuses(users: readonly string[]): Promise<UserStatusView[]> {
    const found: ClusterStatus[] = [];
    for (let i = 0; i < users.length; i += BATCH) {
      found.push(...(await Promise.all(users.slice(i, i + BATCH).map(async (user) => clusterStatus(await this.entries(user))))));
    }
    const offline = users.filter((_, i) => found[i]?.status === 'offline');
    const seen = offline.length > 0 ? await this.deps.store.lastSeenMany(offline) : new Map<string, number>();
    return users.map((user, i) => {
      const status = found[i] ?? { status: 'offline' };
      const lastSeen = status.status === 'offline' ? seen.get(user) : status.activeAt;
      return { user, status: status.status, ...(lastSeen !== undefined ? { lastSeen } : {}) };
    });
  }

  /** Runs `sync` for the user once more after whatever runs for them now; repeated requests meanwhile coalesce. */
  private schedule(user: string): void {
    if (this.stopped || this.dirty.has(user)) return;
    this.dirty.add(user);
    const previous = this.chains.get(user) ?? Promise.resolve();
    const next = previous.then(async () => {
      this.dirty.delete(user);
      try {
        await this.sync(user);
      } catch (err) {
        this.deps.logger.warn({ err, user }, 'user status not updated');
      }
    });
    this.chains.set(user, next);
    void next.then(() => {
      if (this.chains.get(user) === next) this.chains.delete(user);
    });
  }

  /**
   * Writes what this node says of the user, then publishes the status if it changed. A node
   * alone on its bus is the whole cluster: what it knows of its users is the status, and it
   * keeps no cluster entries (they would cost each connected user a presence record here).
   */
  private async sync(user: string): Promise<void> {
    const state = this.local.state(user);
    const node = this.deps.node;
    if (state) {
      if (node.distributed) await Promise.all([node.setClusterEntry(userSet(user), entryOf(user, node.id, state)), node.setClusterEntry(nodeSet(node.id), { user, client: user })]);
    } else {
      if (node.distributed) await Promise.all([node.removeClusterEntry(userSet(user), node.id), node.removeClusterEntry(nodeSet(node.id), user)]);
      await this.deps.store.touchUser(user, Date.now());
    }
    await this.reconcile(user);
  }

  /** Publishes the user's status when the channel's latest publication says otherwise. */
  private async reconcile(user: string): Promise<void> {
    if (!this.deps.publish) return;
    const node = this.deps.node;
    let channel;
    try {
      channel = node.channels.resolve(statusChannel(this.deps.namespaces.status, user));
    } catch {
      return; // A user id no channel can carry has no status channel.
    }
    for (let round = 0; round < RECONCILE_ROUNDS; round++) {
      const current = clusterStatus(await this.entries(user));
      const last = await node.history(channel, { limit: 1, reverse: true });
      if (statusOf(last.publications[0]?.data) === current.status) return;
      const lastSeen = current.status === 'offline' ? await this.deps.store.lastSeen(user) : current.activeAt;
      const data = toJsonText({ user, status: current.status, ...(lastSeen !== undefined ? { last_seen: lastSeen } : {}) });
      // The key makes nodes that saw the same change publish it once; a node alone publishes
      // each user's changes one after another (`schedule`) and needs none to remember.
      await node.publish(channel, data, node.distributed ? { idempotencyKey: `status:${current.status}:${last.position.epoch}:${last.position.offset}` } : {});
    }
  }

  private async entries(user: string): Promise<NodeUserState[]> {
    if (!this.deps.node.distributed) {
      const state = this.local.state(user);
      return state ? [state] : [];
    }
    const entries = await this.deps.node.clusterEntries(userSet(user));
    return Object.values(entries).flatMap((info) => {
      const state = stateOf(info.connInfo);
      return state ? [state] : [];
    });
  }

  /** Sets this node's entries again before they expire. */
  private async refresh(): Promise<void> {
    const node = this.deps.node;
    if (!node.distributed) return;
    const work: Promise<void>[] = [];
    for (const [user, state] of this.local.entries()) {
      work.push(node.setClusterEntry(userSet(user), entryOf(user, node.id, state)), node.setClusterEntry(nodeSet(node.id), { user, client: user }));
      if (work.length >= BATCH) await Promise.allSettled(work.splice(0));
    }
    await Promise.allSettled(work);
  }

  /** Peers that stopped sending heartbeats: their users' entries are removed and their statuses published. */
  private async checkPeers(): Promise<void> {
    const self = this.deps.node.id;
    const current = new Set(
      this.deps.node
        .nodes()
        .map((n) => n.id)
        .filter((id) => id !== self),
    );
    const gone = [...this.peers].filter((id) => !current.has(id));
    this.peers = current;
    for (const peer of gone) {
      try {
        await this.forgetPeer(peer);
      } catch (err) {
        this.deps.logger.warn({ err, peer }, 'statuses of the users of a vanished node not updated; their entries will expire');
      }
    }
  }

  private async forgetPeer(peer: string): Promise<void> {
    const node = this.deps.node;
    const users = Object.keys(await node.clusterEntries(nodeSet(peer)));
    if (users.length > 0) this.deps.logger.info({ peer, users: users.length }, 'node vanished: updating the status of its users');
    for (let i = 0; i < users.length; i += BATCH) {
      await Promise.all(
        users.slice(i, i + BATCH).map(async (user) => {
          const entry = stateOf((await node.clusterEntries(userSet(user)))[peer]?.connInfo);
          await node.removeClusterEntry(userSet(user), peer);
          if (entry) await this.deps.store.touchUser(user, entry.activeAt);
          this.schedule(user);
        }),
      );
    }
  }

  private every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }
}

function userSet(user: string): string {
  return `$status:${user}`;
}

function nodeSet(node: string): string {
  return `$status-node:${node}`;
}

function entryOf(user: string, node: string, state: NodeUserState): ClientInfo {
  return { user, client: node, connInfo: toJsonText({ s: state.state, a: state.activeAt }) };
}

function stateOf(text: JsonText | undefined): NodeUserState | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as { s?: unknown; a?: unknown };
    if ((value.s === 'online' || value.s === 'away') && typeof value.a === 'number') return { state: value.s, activeAt: value.a };
  } catch {
    // An entry of another version: ignored.
  }
  return undefined;
}

function statusOf(data: JsonText | undefined): UserStatus | undefined {
  if (data === undefined) return undefined;
  try {
    const status = (JSON.parse(data) as { status?: unknown }).status;
    return status === 'online' || status === 'away' || status === 'offline' ? status : undefined;
  } catch {
    return undefined;
  }
}
