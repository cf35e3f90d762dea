import { sleep } from '../net.js';
import { hardFdLimit, withDescendants } from '../procstat.js';
import type { IdleScenarioResult, IdleStep, IdleTargetResult, ScenarioId } from '../results.js';
import { startTarget } from '../targets/start.js';
import { connectionProcesses, type RunningTarget, type TargetName, type TargetOptions } from '../targets/target.js';
import { cpuDelta, cpuSnapshot, errorMessage, sourceAddresses, totalRssFilesOnce, totalRss, type Log } from './common.js';
import { SubscriberGroup } from './load_group.js';

export interface IdleSpec {
  readonly id: ScenarioId;
  readonly title: string;
  readonly targets: readonly TargetName[];
  /** Connection counts, one fresh server each. */
  readonly counts: readonly number[];
  /** 1: every connection subscribes to a channel of its own. */
  readonly subscribersPerRoom: number;
  /** Time between the last subscription and the RSS reading. */
  readonly settleMs: number;
  /** Time over which the server's CPU is read while the connections idle. */
  readonly cpuWindowMs: number;
  /**
   * Time after start for a second, settled baseline: V8 grows its young generation during
   * start-up and gives it back about 8 s later, when its memory reducer finds the process idle.
   */
  readonly settledBaselineMs: number;
  /** Connections per load process (each process stays under the open-files limit). */
  readonly perProcess: number;
  /** Time allowed to open every connection of a step; default 60 s + 3 ms per connection. */
  readonly connectTimeoutMs?: number;
  readonly targetOptions: TargetOptions;
}

/** Open files a process needs beyond its connections (stdio, epoll, libuv, Redis, log files). */
const FD_HEADROOM = 256;
/**
 * Connections per source address: well under the 28,232 ephemeral ports of one address, since
 * other programs on the machine use 127.0.0.1's ports too (20,000 there ran out of ports).
 */
const PER_ADDRESS = 10_000;
const BASELINE_SETTLE_MS = 1500;

async function measure(spec: IdleSpec, name: TargetName, requested: number, planned: number, note: string, log: Log): Promise<IdleStep> {
  let target: RunningTarget | null = null;
  let group: SubscriberGroup | null = null;
  try {
    target = await startTarget(name, spec.targetOptions);
    const pids = target.servers.flatMap((s) => withDescendants(s.pid));
    await sleep(BASELINE_SETTLE_MS);
    const rssBaselineBytes = totalRss(pids);
    await sleep(Math.max(0, spec.settledBaselineMs - BASELINE_SETTLE_MS));
    const rssSettledBaselineBytes = totalRss(pids);
    const rssFilesOnceSettledBaselineBytes = totalRssFilesOnce(pids);
    const started = await SubscriberGroup.start({
      endpoint: target.endpoint,
      connections: planned,
      rooms: Math.max(1, Math.ceil(planned / spec.subscribersPerRoom)),
      processes: Math.max(2, Math.ceil(planned / spec.perProcess)),
      localAddresses: sourceAddresses(planned, PER_ADDRESS),
      perAddress: PER_ADDRESS,
      concurrency: 100,
      connectTimeoutMs: spec.connectTimeoutMs ?? 60_000 + planned * 3,
      cpus: spec.targetOptions.pin?.load,
    });
    group = started.group;
    await sleep(spec.settleMs);
    const rssLoadedBytes = totalRss(pids);
    const { ok, failed, firstError } = started.outcome;
    const cpuBefore = cpuSnapshot(pids);
    await sleep(spec.cpuWindowMs);
    const cpuAfter = cpuSnapshot(pids);
    const rssIdledBytes = totalRss(pids);
    const rssFilesOnceIdledBytes = totalRssFilesOnce(pids);
    const cpuUs = cpuDelta(cpuBefore, cpuAfter);
    const idleCpuPer10k = cpuUs === null || ok === 0 ? null : ((cpuUs / 1000 / (cpuAfter.at - cpuBefore.at)) * 100 * 10_000) / ok;
    const perConnection = (before: number | null, loaded: number | null): number | null => (before !== null && loaded !== null && ok > 0 ? (loaded - before) / ok : null);
    const bytesPerConnection = perConnection(rssBaselineBytes, rssLoadedBytes);
    const bytesPerConnectionSettled = perConnection(rssSettledBaselineBytes, rssIdledBytes);
    const kb = (bytes: number | null): string => (bytes === null ? '-' : (bytes / 1024).toFixed(1));
    log(`  ${name}: ${ok}/${planned} connections, ${kb(bytesPerConnection)} KB each (${kb(bytesPerConnectionSettled)} at rest), idle CPU ${idleCpuPer10k === null ? '-' : idleCpuPer10k.toFixed(2)} % of a core per 10k${failed > 0 ? `, ${failed} failed (${firstError})` : ''}`);
    return { requested, planned, connected: ok, failed, firstError, note, rssBaselineBytes, rssLoadedBytes, bytesPerConnection, rssSettledBaselineBytes, rssIdledBytes, bytesPerConnectionSettled, rssFilesOnceSettledBaselineBytes, rssFilesOnceIdledBytes, idleCpuPer10k };
  } finally {
    await group?.stop();
    await target?.stop();
  }
}

/**
 * Server RSS per idle subscribed connection: (RSS with N connections - RSS before any) / N,
 * a fresh server per count. Counts above what the open-files limit allows are capped.
 */
export async function runIdle(spec: IdleSpec, log: Log): Promise<IdleScenarioResult> {
  log(`scenario ${spec.id}: ${spec.title}`);
  const limit = hardFdLimit();
  const targets: IdleTargetResult[] = [];
  for (const name of spec.targets) {
    // The server processes of one target (its workers) share the connections about evenly.
    const servers = connectionProcesses(name, spec.targetOptions);
    const maxConnections = (limit - FD_HEADROOM) * servers;
    const steps: IdleStep[] = [];
    let error: string | null = null;
    for (const requested of spec.counts) {
      const planned = Math.min(requested, maxConnections);
      const note = planned < requested ? `capped from ${requested}: open-files hard limit ${limit} per server process, ${servers} server process${servers > 1 ? 'es' : ''}` : '';
      if (steps.some((s) => s.planned === planned)) {
        steps.push({ requested, planned: 0, connected: 0, failed: 0, firstError: '', note: `skipped: ${note}`, rssBaselineBytes: null, rssLoadedBytes: null, bytesPerConnection: null, idleCpuPer10k: null });
        log(`  ${name}: ${requested} skipped (${note})`);
        continue;
      }
      try {
        steps.push(await measure(spec, name, requested, planned, note, log));
      } catch (err) {
        error = errorMessage(err);
        log(`  ${name}: ERROR ${error}`);
        break;
      }
    }
    targets.push({ target: name, error, steps });
  }
  return { kind: 'idle', id: spec.id, title: spec.title, subscribersPerRoom: spec.subscribersPerRoom, settleMs: spec.settleMs, cpuWindowMs: spec.cpuWindowMs, settledBaselineMs: spec.settledBaselineMs, targets };
}
