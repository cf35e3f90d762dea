import { quantileOf } from '../metrics.js';
import { sleep } from '../net.js';
import { listenOverflows, withDescendants } from '../procstat.js';
import type { RecoveryRound, RecoveryScenarioResult, RecoveryTargetResult, ScenarioId } from '../results.js';
import { startTarget } from '../targets/start.js';
import type { RunningTarget, TargetName, TargetOptions } from '../targets/target.js';
import { cpuDelta, cpuSnapshot, errorMessage, type Log } from './common.js';
import { Publisher, SubscriberGroup } from './load_group.js';

export interface RecoverySpec {
  readonly id: ScenarioId;
  readonly title: string;
  readonly targets: readonly TargetName[];
  readonly clients: number;
  /** Publications per second into the one channel, all along. */
  readonly rate: number;
  /** Publishing before the drop. */
  readonly beforeMs: number;
  /** Time the clients stay away: rate x downMs / 1000 publications to recover. */
  readonly downMs: number;
  /** Publishing after the reconnect. */
  readonly afterMs: number;
  /**
   * Each client reconnects after a random wait under this (0: all at once), as the SDKs'
   * backoff jitter spreads real clients (centrifuge-js: 0.5 to 1 s after a drop); its time
   * counts from its own new socket.
   */
  readonly spreadMs: number;
  /** Publishing stops before the clients return: the reconnect window holds no live fan-out. */
  readonly quiet: boolean;
  readonly rounds: number;
  readonly clientProcesses: number;
  readonly padBytes: number;
  readonly targetOptions: TargetOptions;
}

const RECONNECT_TIMEOUT_MS = 30_000;
const CLIENTS_PER_PROCESS = 15_000;
/** In a quiet run the last publication leaves this long before the reconnect. */
const QUIET_MARGIN_MS = 300;
/** Only Relais keeps history and positions; the peers are listed as not applicable. */
const RECOVERABLE: readonly TargetName[] = ['relais', 'relais-redis', 'relais-baseline', 'relais-protobuf', 'relais-workers'];

function toMs(us: number | null): number | null {
  return us === null ? null : us / 1000;
}

async function round(spec: RecoverySpec, target: RunningTarget, index: number, log: Log): Promise<RecoveryRound> {
  let group: SubscriberGroup | null = null;
  let publisher: Publisher | null = null;
  try {
    const started = await SubscriberGroup.start({
      endpoint: target.endpoint,
      connections: spec.clients,
      rooms: 1,
      // Each client process under the open-file limit (20,000 here), with room for its pipes.
      processes: Math.max(spec.clientProcesses, Math.ceil(spec.clients / CLIENTS_PER_PROCESS)),
      localAddresses: [],
      perAddress: spec.clients,
      concurrency: 100,
      connectTimeoutMs: 60_000,
      cpus: spec.targetOptions.pin?.load,
    });
    group = started.group;
    if (started.outcome.failed > 0) throw new Error(`${started.outcome.failed} connections failed: ${started.outcome.firstError}`);
    publisher = await Publisher.start(target.endpoint, spec.targetOptions.pin?.load);
    const stepId = index + 1;
    await group.begin(stepId);
    const run = publisher.run({
      warmStep: -stepId,
      step: stepId,
      rate: spec.rate,
      warmupMs: 0,
      // Quiet: the clients miss what is published while they are away, and publishing ends before they return.
      measureMs: spec.quiet ? spec.beforeMs + spec.downMs - QUIET_MARGIN_MS : spec.beforeMs + spec.downMs + spec.afterMs,
      rooms: 1,
      padBytes: spec.padBytes,
      maxBufferedBytes: 4 * 1024 * 1024,
    });
    await run.measuring;
    // A server's workers count with it (relais-workers).
    const serverPids = target.servers.flatMap((s) => withDescendants(s.pid));
    // Settle first: the clients' first deliveries and the publisher's start are not fan-out.
    await sleep(Math.min(500, spec.beforeMs / 3));
    const fanout0 = cpuSnapshot(serverPids);
    const fanoutFrom = performance.now();
    await sleep(spec.beforeMs - Math.min(500, spec.beforeMs / 3));
    const fanoutCpu = cpuDelta(fanout0, cpuSnapshot(serverPids));
    const fanoutCpuMsPerS = fanoutCpu === null ? null : fanoutCpu / 1000 / ((performance.now() - fanoutFrom) / 1000);
    const dropped = await group.drop();
    await sleep(spec.downMs);
    const loadPids = [...group.pids, publisher.child.pid];
    const overflows0 = listenOverflows();
    const server0 = cpuSnapshot(serverPids);
    const load0 = cpuSnapshot(loadPids);
    const windowFrom = performance.now();
    const reports = await group.reconnect(RECONNECT_TIMEOUT_MS + spec.spreadMs, spec.spreadMs);
    const windowMs = performance.now() - windowFrom;
    const server1 = cpuSnapshot(serverPids);
    const load1 = cpuSnapshot(loadPids);
    const overflows1 = listenOverflows();
    const done = await run.done;
    const expected = done.sent * spec.clients;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await group.poll()).unique < expected) await sleep(100);
    const stats = await group.end();
    const times = reports.flatMap((r) => r.timesMs);
    const openMs = reports.flatMap((r) => r.openMs);
    const readyMs = reports.flatMap((r) => r.readyMs);
    const recovered = reports.reduce((n, r) => n + r.recovered, 0);
    const replayed = reports.reduce((n, r) => n + r.replayed, 0);
    const result: RecoveryRound = {
      clients: spec.clients,
      positioned: dropped.positioned,
      recovered,
      notRecovered: reports.reduce((n, r) => n + r.notRecovered, 0),
      failed: reports.reduce((n, r) => n + r.failed, 0),
      firstError: reports.find((r) => r.firstError !== '')?.firstError ?? '',
      replayedMean: recovered > 0 ? replayed / recovered : null,
      p50Ms: quantileOf(times, 0.5),
      p99Ms: quantileOf(times, 0.99),
      maxMs: quantileOf(times, 1),
      openP50Ms: quantileOf(openMs, 0.5),
      openP99Ms: quantileOf(openMs, 0.99),
      readyP50Ms: quantileOf(readyMs, 0.5),
      readyP99Ms: quantileOf(readyMs, 0.99),
      listenOverflows: overflows0 === null || overflows1 === null ? null : overflows1 - overflows0,
      serverCpuMs: toMs(cpuDelta(server0, server1)),
      loadCpuMs: toMs(cpuDelta(load0, load1)),
      fanoutCpuMsPerS,
      windowMs,
      quiet: spec.quiet,
      spreadMs: spec.spreadMs,
      expected,
      loss: expected - (stats.received - stats.duplicates),
      duplicates: stats.duplicates,
      offsetGaps: stats.offsetGaps,
      offsetDuplicates: stats.offsetDuplicates,
    };
    const ms = (v: number | null): string => (v === null ? '-' : v.toFixed(1));
    log(
      `  ${target.name} round ${index + 1}: ${recovered}/${spec.clients} recovered, ${ms(result.replayedMean)} replayed each, p50 ${ms(result.p50Ms)} ms, p99 ${ms(result.p99Ms)} ms, listen overflows ${result.listenOverflows ?? '-'}, server CPU ${ms(result.serverCpuMs)} ms (fan-out alone ${ms(fanoutCpuMsPerS)} ms/s; window ${ms(windowMs)} ms${spec.quiet ? ', no publishing' : ''}${spec.spreadMs > 0 ? `, spread over ${spec.spreadMs} ms` : ''}), load CPU ${ms(result.loadCpuMs)} ms, loss ${result.loss}, dup ${result.duplicates}, offset gaps ${result.offsetGaps}, offset dup ${result.offsetDuplicates}`,
    );
    return result;
  } finally {
    await publisher?.stop();
    await group?.stop();
  }
}

/**
 * Reconnect with recovery: every client drops at once while publications flow, stays away
 * downMs, reconnects at once and resubscribes from its last offset; time from the new socket
 * to the subscribe reply carrying the missed publications. Loss is checked over the round.
 */
export async function runRecovery(spec: RecoverySpec, log: Log): Promise<RecoveryScenarioResult> {
  log(`scenario ${spec.id}: ${spec.title}`);
  const targets: RecoveryTargetResult[] = [];
  for (const name of spec.targets) {
    if (!RECOVERABLE.includes(name)) {
      targets.push({ target: name, applicable: false, error: null, rounds: [] });
      continue;
    }
    const rounds: RecoveryRound[] = [];
    let target: RunningTarget | null = null;
    let error: string | null = null;
    try {
      target = await startTarget(name, spec.targetOptions);
      for (let i = 0; i < spec.rounds; i++) rounds.push(await round(spec, target, i, log));
    } catch (err) {
      error = errorMessage(err);
      log(`  ${name}: ERROR ${error}`);
    } finally {
      await target?.stop();
    }
    targets.push({ target: name, applicable: true, error, rounds });
  }
  return { kind: 'recovery', id: spec.id, title: spec.title, clients: spec.clients, rate: spec.rate, downMs: spec.downMs, targets };
}
