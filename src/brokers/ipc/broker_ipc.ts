import type { JsonText } from '../../core/json.js';
import type { ClientInfo, StreamPosition } from '../../core/publication.js';
import type { Broker, BrokerEventHandler, BrokerLogger, ControlMessage, HistoryQuery, HistoryResult, PublishOptions } from '../broker.js';
import type { PrimaryClient } from './ipc_client.js';

/**
 * The broker of a worker of `relais serve --workers N` without Redis or NATS: every operation
 * goes to the primary process's PrimaryBus, which holds the one memory broker of the server;
 * events come back on the same ordered link. A handler that throws is logged, never fails
 * the delivery of the others.
 */
export class IpcBroker implements Broker {
  readonly kind = 'ipc';
  private handler: BrokerEventHandler | undefined;

  constructor(
    private readonly primary: PrimaryClient,
    private readonly logger: BrokerLogger,
  ) {
    primary.receiveEvents((event) => {
      const handler = this.handler;
      if (!handler) return;
      try {
        switch (event.kind) {
          case 'publication':
            handler.handlePublication(event.channel, event.publication);
            return;
          case 'join':
            handler.handleJoin(event.channel, event.info);
            return;
          case 'leave':
            handler.handleLeave(event.channel, event.info);
            return;
          case 'control':
            handler.handleControl(event.message);
            return;
        }
      } catch (err) {
        this.logger.error({ err }, 'broker event handler threw');
      }
    });
  }

  async start(handler: BrokerEventHandler): Promise<void> {
    await this.primary.request({ op: 'ping' });
    this.handler = handler;
  }

  publish(channel: string, data: JsonText, options: PublishOptions): Promise<StreamPosition> {
    return this.primary.request({ op: 'publish', channel, data, options });
  }

  publishJoin(channel: string, info: ClientInfo): Promise<void> {
    return this.primary.request({ op: 'join', channel, info });
  }

  publishLeave(channel: string, info: ClientInfo): Promise<void> {
    return this.primary.request({ op: 'leave', channel, info });
  }

  publishControl(message: ControlMessage): Promise<void> {
    return this.primary.request({ op: 'control', message });
  }

  subscribe(channels: readonly string[]): Promise<void> {
    return this.primary.request({ op: 'subscribe', channels });
  }

  unsubscribe(channels: readonly string[]): Promise<void> {
    return this.primary.request({ op: 'unsubscribe', channels });
  }

  subscribePattern(pattern: string): Promise<void> {
    return this.primary.request({ op: 'subscribePattern', pattern });
  }

  unsubscribePattern(pattern: string): Promise<void> {
    return this.primary.request({ op: 'unsubscribePattern', pattern });
  }

  history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    return this.primary.request({ op: 'history', channel, query });
  }

  removeHistory(channel: string): Promise<void> {
    return this.primary.request({ op: 'removeHistory', channel });
  }

  streamChannels(pattern: string): Promise<string[]> {
    return this.primary.request({ op: 'streamChannels', pattern });
  }

  ping(): Promise<void> {
    return this.primary.request({ op: 'ping' });
  }

  close(): Promise<void> {
    this.handler = undefined;
    return Promise.resolve();
  }
}
