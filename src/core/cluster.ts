import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ControlMessage, NodeInfo } from '../brokers/broker.js';
import { compileGlob } from './channel.js';

const HEARTBEAT_MS = 5_000;
const PEER_EXPIRY_MS = 20_000;
const SURVEY_TIMEOUT_MS = 2_000;

/** What the cluster view needs of its node. */
export interface ClusterMember {
  readonly id: string;
  readonly logger: Logger;
  /** This node as the `info` API shows it. */
  selfInfo(): NodeInfo;
  /** Channels with local subscribers and their counts. */
  channelCounts(): Iterable<[string, number]>;
  /** Sends a control message to every node. */
  control(message: ControlMessage): Promise<void>;
}

interface Survey {
  readonly waiting: Set<string>;
  readonly counts: Map<string, number>;
  readonly done: () => void;
}

type ClusterMessage = Extract<ControlMessage, { type: 'node' | 'survey' | 'survey_reply' }>;

/**
 * A node's view of its peers on the bus: heartbeats (for `info`), and surveys that sum the
 * channels with subscribers over every node (for `channels`), since no node knows the
 * subscribers of the others.
 */
export class ClusterView {
  readonly heartbeatMs = HEARTBEAT_MS;
  private readonly peers = new Map<string, { info: NodeInfo; expiresAt: number }>();
  private readonly surveys = new Map<string, Survey>();

  constructor(private readonly member: ClusterMember) {}

  static handles(message: ControlMessage): message is ClusterMessage {
    return message.type === 'node' || message.type === 'survey' || message.type === 'survey_reply';
  }

  handle(message: ClusterMessage): void {
    switch (message.type) {
      case 'node': {
        if (message.node.id === this.member.id) return;
        const known = this.peers.has(message.node.id);
        this.peers.set(message.node.id, { info: message.node, expiresAt: Date.now() + PEER_EXPIRY_MS });
        // A node heard for the first time hears from this one at once, not at the next beat:
        // nodes started together each miss the other's first heartbeat (sent before the other
        // listened), and one that dies before its next beat would otherwise go unnoticed.
        if (!known) void this.heartbeat();
        return;
      }
      case 'survey': {
        if (message.from === this.member.id) return;
        const channels = Object.fromEntries(this.localMatches(message.pattern));
        this.member
          .control({ type: 'survey_reply', id: message.id, to: message.from, from: this.member.id, channels })
          .catch((err: unknown) => this.member.logger.warn({ err }, 'survey reply failed'));
        return;
      }
      case 'survey_reply': {
        if (message.to !== this.member.id) return;
        const survey = this.surveys.get(message.id);
        if (!survey) return;
        for (const [channel, n] of Object.entries(message.channels)) survey.counts.set(channel, (survey.counts.get(channel) ?? 0) + n);
        survey.waiting.delete(message.from);
        if (survey.waiting.size === 0) survey.done();
        return;
      }
    }
  }

  /** Tells the other nodes this one is alive, with its counts. */
  async heartbeat(): Promise<void> {
    try {
      await this.member.control({ type: 'node', node: this.member.selfInfo() });
    } catch (err) {
      this.member.logger.warn({ err }, 'node heartbeat failed');
    }
  }

  /** This node and the peers heard from recently. */
  nodes(): NodeInfo[] {
    return [this.member.selfInfo(), ...this.livePeers()];
  }

  /** Channels matching a glob with subscribers on any node, and their summed counts (sorted by name). */
  async activeChannels(pattern: string): Promise<Record<string, number>> {
    const counts = this.localMatches(pattern);
    const peers = [...this.livePeers()].map((p) => p.id);
    if (peers.length > 0) {
      const id = randomUUID();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, SURVEY_TIMEOUT_MS);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.surveys.set(id, { waiting: new Set(peers), counts, done });
        this.member.control({ type: 'survey', id, from: this.member.id, op: 'channels', pattern }).catch(done);
      });
      this.surveys.delete(id);
    }
    return Object.fromEntries([...counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  private localMatches(pattern: string): Map<string, number> {
    const match = compileGlob(pattern);
    const counts = new Map<string, number>();
    for (const [channel, n] of this.member.channelCounts()) if (match(channel)) counts.set(channel, n);
    return counts;
  }

  private *livePeers(): Iterable<NodeInfo> {
    const now = Date.now();
    for (const [id, peer] of this.peers) {
      if (peer.expiresAt <= now) this.peers.delete(id);
      else yield peer.info;
    }
  }
}
