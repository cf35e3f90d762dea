/**
 * Lifecycle webhooks (docs/webhooks.md): a connection closed, a subscription ended, a channel
 * occupied (its first subscriber cluster-wide) or vacated (its last one left). Connection and
 * subscription events are reported by the node that held them, so once; occupancy events by
 * the node whose change made the transition in the bus's shared occupancy (OccupancyCounter),
 * so once per transition across instances.
 */
import type { Logger } from 'pino';
import type { OccupancyCounter } from '../../brokers/occupancy.js';
import type { WebhookEvent } from '../../config/schema.js';
import type { Disconnect } from '../../core/errors.js';
import type { Node } from '../../core/node.js';
import type { ClientInfo } from '../../core/publication.js';
import type { WebhookSender } from './webhook_sender.js';

const RETRY_MS = 1000;

export interface LifecycleWebhooksOptions {
  readonly node: Node;
  readonly sender: WebhookSender;
  readonly occupancy: OccupancyCounter;
  readonly events: readonly WebhookEvent[];
  /** How often this node proves it is alive and removes the channels of nodes that are not. */
  readonly sweepMs: number;
  readonly logger: Logger;
}

export interface RunningLifecycleWebhooks {
  /** Waits for occupancy changes in flight, then sends what is queued within `graceMs`. */
  stop(graceMs: number): Promise<void>;
}

export function attachLifecycleWebhooks(options: LifecycleWebhooksOptions): RunningLifecycleWebhooks {
  const { node, sender, occupancy } = options;
  const logger = options.logger.child({ component: 'webhooks' });
  const wanted = new Set(options.events);
  const emit = (type: WebhookEvent, fields: Record<string, unknown>): void => {
    if (wanted.has(type)) sender.enqueue({ type, time: Date.now(), node: node.id, ...fields });
  };

  node.observeConnections({
    connected: () => undefined,
    active: () => undefined,
    disconnected(info: ClientInfo, disconnect: Disconnect) {
      emit('connection_closed', { client: info.client, user: info.user, code: disconnect.code, reason: disconnect.reason });
    },
  });

  // Subscribers of each channel on this node, and what this node last recorded in the shared occupancy.
  const local = new Map<string, number>();
  const recorded = new Set<string>();
  const chains = new Map<string, Promise<void>>();
  let stopping = false;

  const record = async (channel: string): Promise<void> => {
    const occupied = (local.get(channel) ?? 0) > 0;
    if (occupied === recorded.has(channel)) return;
    try {
      const transition = await occupancy.set(channel, occupied);
      if (occupied) recorded.add(channel);
      else recorded.delete(channel);
      if (transition === 'occupied') emit('channel_occupied', { channel });
      else if (transition === 'vacated') emit('channel_vacated', { channel });
    } catch (err) {
      logger.warn({ err, channel }, 'channel occupancy not recorded; retrying');
      if (!stopping) setTimeout(() => sync(channel), RETRY_MS).unref();
    }
  };
  // One change of a channel at a time, in order; a burst of joins and leaves collapses into the last state.
  const sync = (channel: string): void => {
    const next = (chains.get(channel) ?? Promise.resolve()).then(() => record(channel));
    chains.set(channel, next);
    void next.then(() => {
      if (chains.get(channel) === next) chains.delete(channel);
    });
  };

  node.observeSubscriptions({
    subscribed(channel) {
      const count = (local.get(channel) ?? 0) + 1;
      local.set(channel, count);
      if (count === 1) sync(channel);
    },
    unsubscribed(channel, info) {
      emit('unsubscribed', { channel, client: info.client, user: info.user });
      const count = (local.get(channel) ?? 1) - 1;
      if (count > 0) {
        local.set(channel, count);
        return;
      }
      local.delete(channel);
      sync(channel);
    },
  });

  const sweep = async (): Promise<void> => {
    try {
      for (const channel of await occupancy.sweep()) emit('channel_vacated', { channel });
    } catch (err) {
      logger.warn({ err }, 'channel occupancy sweep failed');
    }
  };
  const timer = setInterval(() => void sweep(), options.sweepMs);
  timer.unref();
  void sweep();

  return {
    async stop(graceMs) {
      stopping = true;
      clearInterval(timer);
      await Promise.allSettled([...chains.values()]);
      await sender.close(graceMs);
      await occupancy.close();
    },
  };
}
