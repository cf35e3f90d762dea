import { cpuTimeUs, rssBytes, sumOver } from '../procstat.js';

/** Progress lines go to stderr so that stdout keeps the tables. */
export type Log = (line: string) => void;

export const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** CPU time of a set of processes at one instant. */
export interface CpuSnapshot {
  readonly at: number;
  readonly us: number | null;
}

export function cpuSnapshot(pids: readonly number[]): CpuSnapshot {
  return { at: performance.now(), us: pids.length === 0 ? null : sumOver(pids, cpuTimeUs) };
}

/** CPU microseconds between two snapshots; null when a process vanished. */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): number | null {
  return before.us === null || after.us === null ? null : after.us - before.us;
}

export function totalRss(pids: readonly number[]): number | null {
  return sumOver(pids, rssBytes);
}

/**
 * Source addresses 127.0.0.2, 127.0.0.3, ... enough for `connections` at `perAddress` each;
 * none (the default 127.0.0.1) when one address is enough, since binding before connecting
 * makes the kernel search for a free port at every connect.
 */
export function sourceAddresses(connections: number, perAddress: number): string[] {
  if (connections <= perAddress) return [];
  const count = Math.min(250, Math.max(1, Math.ceil(connections / perAddress)));
  return Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`);
}
