import type { HistogramData } from '../metrics.js';

/** Wire protocols the lean load clients speak. */
export type ProtocolName = 'ws' | 'socketio' | 'relais' | 'relais-protobuf';

/** Where and how load clients reach a target. */
export interface Endpoint {
  readonly protocol: ProtocolName;
  /** Base URLs (`ws://127.0.0.1:port`), one per server instance. */
  readonly urls: readonly string[];
  /** HS256 secret for connection tokens (Relais). */
  readonly tokenSecret?: string;
}

/** A stream position for recovery (Relais). */
export interface Position {
  readonly offset: number;
  readonly epoch: string;
}

/**
 * Connections of one subscriber process. Connection g (global index, first <= g < first+count)
 * joins room g % rooms, talks to urls[g % urls.length] and binds to
 * localAddresses[floor(g / perAddress) % localAddresses.length].
 */
export interface ConnectCommand {
  readonly type: 'connect';
  readonly endpoint: Endpoint;
  readonly first: number;
  readonly count: number;
  readonly rooms: number;
  readonly localAddresses: readonly string[];
  readonly perAddress: number;
  /** Handshakes in flight at once. */
  readonly concurrency: number;
  /** Deadline for the whole batch. */
  readonly timeoutMs: number;
}

export type ToSubscriber =
  | ConnectCommand
  | { readonly type: 'begin'; readonly step: number }
  | { readonly type: 'poll' }
  | { readonly type: 'end' }
  | { readonly type: 'drop' }
  /** spreadMs: each connection starts after a random wait under it, as SDK clients' backoff jitter spreads them. */
  | { readonly type: 'reconnect'; readonly concurrency: number; readonly timeoutMs: number; readonly spreadMs: number };

/** Counts of one measured step in one subscriber process. */
export interface StepCounts {
  /** Deliveries of the measured step, duplicates included. */
  readonly received: number;
  /** Deliveries whose room sequence was not above the last one seen on that connection. */
  readonly duplicates: number;
  /** Room sequence numbers skipped on a connection (a lower bound of loss, and an ordering check). */
  readonly gaps: number;
  /** Deliveries of other steps (warm-up, late ones). */
  readonly stale: number;
  /** Frames that could not be read as a publication. */
  readonly malformed: number;
  /** Offsets skipped or repeated on a connection (Relais only). */
  readonly offsetGaps: number;
  readonly offsetDuplicates: number;
  /** Connections closed by the server or the network since `begin`. */
  readonly closed: number;
  readonly closeReason: string;
  readonly firstRecvAt: number;
  readonly lastRecvAt: number;
}

/** Zero counts, to start a step or a merge from. */
export function emptyStepCounts(): { -readonly [K in keyof StepCounts]: StepCounts[K] } {
  return { received: 0, duplicates: 0, gaps: 0, stale: 0, malformed: 0, offsetGaps: 0, offsetDuplicates: 0, closed: 0, closeReason: '', firstRecvAt: 0, lastRecvAt: 0 };
}

export interface SubscriberStats extends StepCounts {
  readonly type: 'stats';
  readonly latency: HistogramData;
}

export interface RecoveryReport {
  readonly type: 'recovery';
  /** Time from opening the new socket to the subscribe reply, ms, one per resubscribed client. */
  readonly timesMs: readonly number[];
  /** Of which: to the socket open (TCP + upgrade), and to the end of the protocol handshake. */
  readonly openMs: readonly number[];
  readonly readyMs: readonly number[];
  readonly recovered: number;
  readonly notRecovered: number;
  readonly failed: number;
  readonly firstError: string;
  /** Publications replayed in subscribe replies. */
  readonly replayed: number;
}

export type FromSubscriber =
  | { readonly type: 'ready' }
  | { readonly type: 'connected'; readonly ok: number; readonly failed: number; readonly firstError: string; readonly ms: number }
  | { readonly type: 'begun' }
  | { readonly type: 'progress'; readonly unique: number; readonly lastAnyRecvAt: number }
  | SubscriberStats
  | { readonly type: 'dropped'; readonly count: number; readonly positioned: number }
  | RecoveryReport
  | { readonly type: 'fatal'; readonly message: string };

export interface RunCommand {
  readonly type: 'run';
  readonly warmStep: number;
  readonly step: number;
  readonly rate: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly rooms: number;
  /** Characters of padding, so that the payload is about 100 bytes. */
  readonly padBytes: number;
  /** Above this many bytes waiting in the socket, the publisher holds back. */
  readonly maxBufferedBytes: number;
}

export type ToPublisher = { readonly type: 'connect'; readonly endpoint: Endpoint } | RunCommand;

export type FromPublisher =
  | { readonly type: 'ready' }
  | { readonly type: 'online' }
  | { readonly type: 'measuring'; readonly at: number }
  | {
      readonly type: 'done';
      readonly sent: number;
      readonly elapsedMs: number;
      /** Publications due but not sent because the socket was backed up. */
      readonly behind: number;
      readonly errors: number;
      readonly firstError: string;
    }
  | { readonly type: 'fatal'; readonly message: string };

/** Any message a bench child sends: discriminated by `type`. */
export type ChildMessage = FromSubscriber | FromPublisher;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const childTypes = new Set(['connected', 'begun', 'progress', 'stats', 'dropped', 'recovery', 'fatal', 'measuring', 'done', 'ready', 'online']);

/** Messages come from our own child processes; the type tag is all there is to check. */
export function isChildMessage(value: unknown): value is ChildMessage {
  return isRecord(value) && typeof value['type'] === 'string' && childTypes.has(value['type']);
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes of one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
