/**
 * From the clients' timelines and the faults injected, each reconnection's breakdown: how
 * long the client took to notice, how long it waited in the SDK's backoff, how long its
 * socket attempts took (and how they failed), how long its subscribe took once connected
 * (and which errors refused it) — and, over the whole run, what each client received against
 * what was acknowledged.
 */
import { quantileOf } from '../metrics.js';
import type { ObservedClient, SocketAttempt } from './observed_client.js';

/** What the breakdown reads of a client. */
export type Timeline = Pick<ObservedClient, 'events' | 'attempts' | 'received'> & { readonly options: { readonly name: string } };

export const FAULT_KINDS = ['kill', 'pause', 'bus-restart', 'kill-in-bus-outage'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Fault {
  readonly kind: FaultKind;
  readonly at: number;
  /** The instance faulted (its WebSocket URL); '' for the bus. */
  readonly instance: string;
  /** When the fault was lifted (restart done, SIGCONT sent, bus back). */
  endAt: number;
}

export interface Episode {
  readonly client: string;
  readonly fault: FaultKind | 'none';
  /** From the fault (or, unattributed, from the client noticing) to subscribed again. */
  readonly totalMs: number;
  /** Fault to the SDK's first sign (connecting, or subscribing for a lost subscription alone). */
  readonly noticeMs: number;
  /** Between noticing and connected: time in socket attempts, and the rest (backoff). */
  readonly inAttemptsMs: number;
  readonly backoffMs: number;
  /** Connected to subscribed (resubscribe backoff and refused subscribes included). */
  readonly subscribeMs: number;
  readonly attempts: number;
  readonly failures: readonly string[];
  readonly connectErrors: readonly number[];
  readonly subscribeErrors: readonly number[];
  readonly recovered: boolean;
}

/** The socket attempt that served `client` at `at`, if any. */
function sessionAt(attempts: readonly SocketAttempt[], at: number): SocketAttempt | undefined {
  for (let i = attempts.length - 1; i >= 0; i--) {
    const a = attempts[i];
    if (a && a.openedAt > 0 && a.openedAt <= at && (a.endedAt === 0 || a.endedAt >= at)) return a;
  }
  return undefined;
}

/** Faults older than this before a client noticed are not its cause. */
const ATTRIBUTION_MS = 60_000;

function attribute(client: Timeline, faults: readonly Fault[], noticedAt: number): Fault | undefined {
  for (let i = faults.length - 1; i >= 0; i--) {
    const f = faults[i];
    if (!f || f.at > noticedAt) continue;
    if (noticedAt - f.at > ATTRIBUTION_MS) return undefined;
    if (f.instance === '' || sessionAt(client.attempts, f.at)?.url === f.instance) return f;
    // The other instances' clients live through that fault's bus outage.
    if (f.kind === 'kill-in-bus-outage') return { ...f, kind: 'bus-restart', instance: '' };
  }
  return undefined;
}

/** Every reconnection (or lost subscription) of every client after its first subscribe. */
export function episodes(clients: readonly Timeline[], faults: readonly Fault[]): Episode[] {
  const out: Episode[] = [];
  for (const client of clients) {
    const events = client.events;
    const firstSubscribed = events.findIndex((e) => e.kind === 'subscribed');
    let i = firstSubscribed + 1;
    while (firstSubscribed >= 0 && i < events.length) {
      const start = events[i];
      if (!start || (start.kind !== 'connecting' && start.kind !== 'subscribing')) {
        i++;
        continue;
      }
      const end = events.findIndex((e, j) => j > i && e.kind === 'subscribed');
      if (end < 0) break;
      const window = events.slice(i, end + 1);
      const noticedAt = start.at;
      const subscribed = window[window.length - 1];
      // The SDK reports the subscription's loss just before the connection's: one episode.
      const lostConnection = window.some((e) => e.kind === 'connecting');
      const connected = lostConnection ? window.find((e) => e.kind === 'connected') : undefined;
      const connectedAt = connected?.at ?? noticedAt;
      const fault = attribute(client, faults, noticedAt);
      const lostAt = fault?.at ?? noticedAt;
      const tried = client.attempts.filter((a) => a.startedAt >= noticedAt && a.startedAt <= connectedAt);
      const inAttemptsMs = tried.reduce((ms, a) => ms + (Math.min(a.endedAt || connectedAt, connectedAt) - a.startedAt), 0);
      out.push({
        client: client.options.name,
        fault: fault?.kind ?? 'none',
        totalMs: (subscribed?.at ?? noticedAt) - lostAt,
        noticeMs: noticedAt - lostAt,
        inAttemptsMs,
        backoffMs: Math.max(0, connectedAt - noticedAt - inAttemptsMs),
        subscribeMs: (subscribed?.at ?? connectedAt) - connectedAt,
        attempts: tried.length,
        failures: tried.map((a) => a.failure).filter((f) => f !== ''),
        connectErrors: window.flatMap((e) => (e.kind === 'error' && e.at <= connectedAt ? [e.code] : [])),
        // Once connected: the subscribing an SDK reports with a lost connection is not a refusal.
        subscribeErrors: window.flatMap((e) => ((e.kind === 'sub_error' || e.kind === 'subscribing') && e !== start && e.at >= connectedAt ? [e.code] : [])),
        recovered: subscribed?.kind === 'subscribed' ? subscribed.recovered : false,
      });
      i = end + 1;
    }
  }
  return out;
}

function counts(values: readonly (string | number)[]): string {
  const map = new Map<string, number>();
  for (const v of values) map.set(String(v), (map.get(String(v)) ?? 0) + 1);
  return [...map].map(([k, n]) => `${k} x${n}`).join(', ') || '-';
}

const mean = (xs: readonly number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
const ms = (v: number | null): string => (v === null ? '-' : Math.round(v).toLocaleString('en-US'));

/** One row per fault kind: reconnections, p50/p99 of the total, and where the time went (means). */
export function breakdownTable(all: readonly Episode[]): string {
  const kinds: (FaultKind | 'none')[] = [...FAULT_KINDS, 'none'];
  const rows = kinds
    .map((kind) => ({ kind, list: all.filter((e) => e.fault === kind) }))
    .filter(({ list }) => list.length > 0)
    .map(({ kind, list }) => {
      const total = list.map((e) => e.totalMs);
      return `| ${kind} | ${list.length} | ${ms(quantileOf(total, 0.5))} | ${ms(quantileOf(total, 0.99))} | ${ms(mean(list.map((e) => e.noticeMs)))} | ${ms(mean(list.map((e) => e.backoffMs)))} | ${ms(mean(list.map((e) => e.inAttemptsMs)))} | ${ms(mean(list.map((e) => e.subscribeMs)))} | ${mean(list.map((e) => e.attempts)).toFixed(1)} | ${counts(list.flatMap((e) => e.failures))} | ${counts(list.flatMap((e) => e.connectErrors))} | ${counts(list.flatMap((e) => e.subscribeErrors))} | ${list.filter((e) => e.recovered).length} / ${list.length} |`;
    });
  return [
    '| fault | reconnections | total p50 ms | total p99 ms | notice (mean ms) | SDK backoff | in socket attempts | connected to subscribed | attempts | failed attempts | connect errors / codes | subscribe errors / codes | recovered |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

export interface DeliveryTotals {
  readonly expected: number;
  readonly missing: number;
  readonly duplicates: number;
  readonly outOfOrder: number;
  /** When each missing publication was acknowledged (ms since the epoch). */
  readonly missingAckedAt: readonly number[];
  /**
   * Missing publications whose client's next subscribe was unrecovered (`wasRecovering`
   * without `recovered`: the SDK told the application that it missed some). The others are
   * losses nobody was told about.
   */
  readonly missingTold: number;
}

/**
 * Each client against the acknowledged publications (by their `n`) acknowledged after its
 * first subscribe: each received once, offsets rising within an epoch.
 */
export function deliveryTotals(clients: readonly Timeline[], acked: ReadonlyMap<number, number>): DeliveryTotals {
  let expected = 0;
  let missing = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  const missingAckedAt: number[] = [];
  let missingTold = 0;
  for (const client of clients) {
    const since = client.events.find((e) => e.kind === 'subscribed')?.at ?? Number.POSITIVE_INFINITY;
    const seen = new Map<number, number>();
    let last: { epoch: string; offset: number } | undefined;
    for (const r of client.received) {
      seen.set(r.n, (seen.get(r.n) ?? 0) + 1);
      if (last && last.epoch === r.epoch && r.offset <= last.offset) outOfOrder++;
      last = { epoch: r.epoch, offset: r.offset };
    }
    for (const [n, ackAt] of acked) {
      if (ackAt <= since) continue;
      expected++;
      if (!seen.has(n)) {
        missing++;
        missingAckedAt.push(ackAt);
        const next = client.events.find((e) => e.kind === 'subscribed' && e.at >= ackAt);
        if (next?.kind === 'subscribed' && next.wasRecovering && !next.recovered) missingTold++;
      }
    }
    for (const count of seen.values()) if (count > 1) duplicates += count - 1;
  }
  return { expected, missing, duplicates, outOfOrder, missingAckedAt, missingTold };
}
