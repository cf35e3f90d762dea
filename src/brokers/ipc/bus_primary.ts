import { compileGlob, type GlobMatcher } from '../../core/channel.js';
import { RelaisError } from '../../core/errors.js';
import type { BrokerEventHandler, BrokerLogger } from '../broker.js';
import { MemoryBroker } from '../memory/broker_memory.js';
import { MemoryPresenceManager } from '../memory/presence_memory.js';
import type { IpcLink } from './ipc_link.js';
import { PrimaryOccupancy } from './occupancy_primary.js';
import { isToPrimary, type IpcRequest, type ToWorker } from './protocol.js';

/** One worker: its link and what it wants delivered. */
interface Member {
  readonly link: IpcLink;
  readonly channels: Set<string>;
  readonly patterns: Map<string, GlobMatcher>;
}

/**
 * The bus of `relais serve --workers N` when no Redis or NATS is configured: the primary
 * process holds the memory broker, presence and channel occupancy of the whole server, and
 * its workers reach them through IPC (IpcBroker, IpcOccupancy). Offsets are assigned in one place, in one order, as by any
 * bus; each worker gets the events of the channels and patterns it subscribed to, once each,
 * in that order.
 */
export class PrimaryBus {
  private readonly broker: MemoryBroker;
  private readonly presence = new MemoryPresenceManager();
  private readonly members = new Set<Member>();
  private readonly occupancy = new PrimaryOccupancy<Member>();

  constructor(private readonly logger: BrokerLogger) {
    this.broker = new MemoryBroker({ logger });
  }

  async start(): Promise<void> {
    const fanOut: BrokerEventHandler = {
      handlePublication: (channel, publication) => this.toInterested(channel, { kind: 'publication', channel, publication }),
      handleJoin: (channel, info) => this.toInterested(channel, { kind: 'join', channel, info }),
      handleLeave: (channel, info) => this.toInterested(channel, { kind: 'leave', channel, info }),
      handleControl: (message) => {
        for (const member of this.members) member.link.send({ kind: 'control', message } satisfies ToWorker);
      },
      handleResync: () => undefined,
    };
    await this.broker.start(fanOut);
  }

  /** Serves a worker until its link closes. */
  attach(link: IpcLink): void {
    const member: Member = { link, channels: new Set(), patterns: new Map() };
    this.members.add(member);
    link.onClose(() => {
      this.members.delete(member);
      this.occupancy.remove(member);
    });
    link.onMessage((message) => {
      if (!isToPrimary(message)) return;
      this.serve(member, message.request).then(
        (result) => link.send({ kind: 'reply', id: message.id, result } satisfies ToWorker),
        (err: unknown) =>
          link.send({
            kind: 'failure',
            id: message.id,
            code: err instanceof RelaisError ? err.code : undefined,
            message: err instanceof Error ? err.message : String(err),
          } satisfies ToWorker),
      );
    });
  }

  async close(): Promise<void> {
    await this.broker.close();
    await this.presence.close();
  }

  private async serve(member: Member, request: IpcRequest): Promise<unknown> {
    switch (request.op) {
      case 'publish':
        return this.broker.publish(request.channel, request.data, request.options);
      case 'join':
        return this.broker.publishJoin(request.channel, request.info);
      case 'leave':
        return this.broker.publishLeave(request.channel, request.info);
      case 'control':
        return this.broker.publishControl(request.message);
      case 'subscribe':
        for (const channel of request.channels) member.channels.add(channel);
        return undefined;
      case 'unsubscribe':
        for (const channel of request.channels) member.channels.delete(channel);
        return undefined;
      case 'subscribePattern':
        if (!member.patterns.has(request.pattern)) member.patterns.set(request.pattern, compileGlob(request.pattern));
        return undefined;
      case 'unsubscribePattern':
        member.patterns.delete(request.pattern);
        return undefined;
      case 'history':
        return this.broker.history(request.channel, request.query);
      case 'removeHistory':
        return this.broker.removeHistory(request.channel);
      case 'streamChannels':
        return this.broker.streamChannels(request.pattern);
      case 'presence.add':
        return this.presence.add(request.channel, request.info, request.ttlMs);
      case 'presence.remove':
        return this.presence.remove(request.channel, request.client);
      case 'presence.get':
        return this.presence.get(request.channel);
      case 'presence.stats':
        return this.presence.stats(request.channel);
      case 'occupancy.set':
        return this.occupancy.set(member, request.channel, request.occupied) ?? null;
      case 'occupancy.sweep':
        return this.occupancy.sweep();
      case 'ping':
        return undefined;
    }
  }

  private toInterested(channel: string, event: ToWorker & { kind: 'publication' | 'join' | 'leave' }): void {
    for (const member of this.members) if (wants(member, channel)) member.link.send(event);
  }
}

/** Whether a worker subscribed to the channel, exactly or through a pattern: once either way. */
function wants(member: Member, channel: string): boolean {
  if (member.channels.has(channel)) return true;
  for (const matcher of member.patterns.values()) if (matcher(channel)) return true;
  return false;
}
