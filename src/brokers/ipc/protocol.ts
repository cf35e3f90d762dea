/**
 * What the primary and its workers say to each other: requests from a worker (bus, presence
 * and channel occupancy operations) with their replies, and the bus's events pushed to the
 * workers that want them. The primary answers requests and pushes events on one ordered channel per
 * worker, so a publication made after a subscribe's reply always comes after that reply.
 */
import type { ControlMessage, HistoryQuery, PublishOptions } from '../broker.js';
import type { JsonText } from '../../core/json.js';
import type { ClientInfo, Publication } from '../../core/publication.js';

export type IpcRequest =
  | { readonly op: 'publish'; readonly channel: string; readonly data: JsonText; readonly options: PublishOptions }
  | { readonly op: 'join' | 'leave'; readonly channel: string; readonly info: ClientInfo }
  | { readonly op: 'control'; readonly message: ControlMessage }
  | { readonly op: 'subscribe' | 'unsubscribe'; readonly channels: readonly string[] }
  | { readonly op: 'subscribePattern' | 'unsubscribePattern'; readonly pattern: string }
  | { readonly op: 'history'; readonly channel: string; readonly query: HistoryQuery }
  | { readonly op: 'removeHistory'; readonly channel: string }
  | { readonly op: 'streamChannels'; readonly pattern: string }
  | { readonly op: 'presence.add'; readonly channel: string; readonly info: ClientInfo; readonly ttlMs: number }
  | { readonly op: 'presence.remove'; readonly channel: string; readonly client: string }
  | { readonly op: 'presence.get' | 'presence.stats'; readonly channel: string }
  | { readonly op: 'occupancy.set'; readonly channel: string; readonly occupied: boolean }
  | { readonly op: 'occupancy.sweep' }
  | { readonly op: 'ping' };

export type ToPrimary = { readonly kind: 'request'; readonly id: number; readonly request: IpcRequest };

export type ToWorker =
  | { readonly kind: 'reply'; readonly id: number; readonly result: unknown }
  | { readonly kind: 'failure'; readonly id: number; readonly code: string | undefined; readonly message: string }
  | { readonly kind: 'publication'; readonly channel: string; readonly publication: Publication }
  | { readonly kind: 'join' | 'leave'; readonly channel: string; readonly info: ClientInfo }
  | { readonly kind: 'control'; readonly message: ControlMessage };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

export function isToPrimary(value: unknown): value is ToPrimary {
  return isObject(value) && value['kind'] === 'request' && typeof value['id'] === 'number' && isObject(value['request']);
}

export function isToWorker(value: unknown): value is ToWorker {
  return isObject(value) && typeof value['kind'] === 'string';
}
