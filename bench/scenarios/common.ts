import { cpuTimeUs, residentParts, rssBytes, sumOver, writeCounts, type WriteCounts } from '../procstat.js';

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

/** Writes of a set of processes so far, summed; null when one is unreadable. */
export function writeSnapshot(pids: readonly number[]): WriteCounts | null {
  let bytes = 0;
  let calls = 0;
  for (const pid of pids) {
    const counts = writeCounts(pid);
    if (counts === null) return null;
    bytes += counts.bytes;
    calls += counts.calls;
  }
  return { bytes, calls };
}

export function writeDelta(before: WriteCounts | null, after: WriteCounts | null): WriteCounts | null {
  return before === null || after === null ? null : { bytes: after.bytes - before.bytes, calls: after.calls - before.calls };
}

export function totalRss(pids: readonly number[]): number | null {
  return sumOver(pids, rssBytes);
}

/**
 * RSS of a group of processes with the file pages counted once: their anonymous pages plus the
 * largest file-backed share among them (the node binary and libraries, which every worker
 * maps). PSS would also split those pages with unrelated node processes (the load clients).
 */
export function totalRssFilesOnce(pids: readonly number[]): number | null {
  let anon = 0;
  let file = 0;
  for (const pid of pids) {
    const parts = residentParts(pid);
    if (parts === null) return null;
    anon += parts.anon;
    file = Math.max(file, parts.file);
  }
  return anon + file;
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
