import { summarize } from '../metrics.js';
import { sleep } from '../net.js';
import { P99_LIMIT_MS, type ScenarioId, type StepResult, type SteppedScenarioResult, type SteppedTargetResult } from '../results.js';
import { startTarget } from '../targets/start.js';
import type { RunningTarget, TargetName, TargetOptions } from '../targets/target.js';
import { withDescendants, type WriteCounts } from '../procstat.js';
import { cpuDelta, cpuSnapshot, errorMessage, sourceAddresses, totalRss, writeDelta, writeSnapshot, type Log } from './common.js';
import { Publisher, SubscriberGroup, type MergedStats } from './load_group.js';

export interface SteppedSpec {
  readonly id: ScenarioId;
  readonly title: string;
  readonly targets: readonly TargetName[];
  readonly rooms: number;
  readonly subscribersPerRoom: number;
  /** Publications per second, one step each, in order. */
  readonly rates: readonly number[];
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Failed steps in a row after which a target stops climbing. */
  readonly maxFailures: number;
  readonly clientProcesses: number;
  readonly padBytes: number;
  /** Longest wait for late deliveries after the publisher stops. */
  readonly drainMs: number;
  readonly targetOptions: TargetOptions;
}

const PUBLISHER_BUFFER_BYTES = 4 * 1024 * 1024;
const CONNECTIONS_PER_ADDRESS = 20_000;
/** The publisher may fall this far behind its rate and the step still count. */
const PACE_TOLERANCE = 0.02;

/** Waits until every expected delivery arrived, or nothing arrived for a second, or the deadline. */
async function drain(group: SubscriberGroup, expected: number, drainMs: number): Promise<void> {
  const deadline = Date.now() + drainMs;
  let last = -1;
  let lastChange = Date.now();
  while (Date.now() < deadline) {
    const { unique } = await group.poll();
    if (unique >= expected) return;
    if (unique !== last) {
      last = unique;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > 1000) {
      return;
    }
    await sleep(100);
  }
}

/** Lets the previous step's stragglers through before the next one starts. */
async function quiet(group: SubscriberGroup, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  await sleep(200);
  while (Date.now() < deadline) {
    const { lastAnyRecvAt } = await group.poll();
    if (performance.timeOrigin + performance.now() - lastAnyRecvAt > 300) return;
    await sleep(200);
  }
}

interface StepInputs {
  readonly rate: number;
  readonly subscribersPerRoom: number;
  readonly sent: number;
  readonly elapsedMs: number;
  readonly behind: number;
  readonly errors: number;
  readonly firstError: string;
  readonly measuringAt: number;
  readonly stats: MergedStats;
  readonly windowMs: number;
  readonly serverCpuUs: number | null;
  readonly loadCpuUs: number | null;
  readonly redisCpuUs: number | null;
  readonly serverRssBytes: number | null;
  readonly serverWrites: WriteCounts | null;
}

export function stepResult(input: StepInputs): StepResult {
  const { stats } = input;
  const unique = stats.received - stats.duplicates;
  const expected = input.sent * input.subscribersPerRoom;
  const spanMs = Math.max(input.elapsedMs, stats.lastRecvAt - input.measuringAt);
  const perDelivery = (us: number | null): number | null => (us === null || unique === 0 ? null : us / unique);
  const latencyMs = summarize(stats.latency);
  const loss = expected - unique;
  const failures = [
    stats.closed > 0 ? `${stats.closed} closed` : '',
    input.errors > 0 ? `${input.errors} refused` : '',
    loss > 0 ? 'loss' : '',
    stats.duplicates > 0 ? 'duplicates' : '',
    input.behind > input.sent * PACE_TOLERANCE ? 'publisher behind' : '',
    latencyMs.p99 === null || latencyMs.p99 >= P99_LIMIT_MS ? 'p99' : '',
  ].filter((f) => f !== '');
  return {
    rate: input.rate,
    actualRate: input.elapsedMs > 0 ? (input.sent * 1000) / input.elapsedMs : 0,
    sent: input.sent,
    expected,
    received: stats.received,
    loss,
    duplicates: stats.duplicates,
    gaps: stats.gaps,
    offsetGaps: stats.offsetGaps,
    offsetDuplicates: stats.offsetDuplicates,
    closed: stats.closed,
    closeReason: stats.closeReason,
    publishErrors: input.errors,
    publishError: input.firstError,
    deliveredPerSec: spanMs > 0 ? (unique * 1000) / spanMs : 0,
    latencyMs,
    serverCpuPerDeliveryUs: perDelivery(input.serverCpuUs),
    serverCpuPercent: input.serverCpuUs === null || input.windowMs <= 0 ? null : input.serverCpuUs / (input.windowMs * 10),
    loadCpuPerDeliveryUs: perDelivery(input.loadCpuUs),
    redisCpuPerDeliveryUs: perDelivery(input.redisCpuUs),
    serverRssBytes: input.serverRssBytes,
    serverWriteBytesPerDelivery: input.serverWrites === null || unique === 0 ? null : input.serverWrites.bytes / unique,
    serverWritesPerDelivery: input.serverWrites === null || unique === 0 ? null : input.serverWrites.calls / unique,
    ok: failures.length === 0,
    failure: failures.join(', '),
  };
}

function describe(step: StepResult): string {
  const p99 = step.latencyMs.p99 === null ? '-' : step.latencyMs.p99.toFixed(1);
  const cpu = step.serverCpuPerDeliveryUs === null ? '-' : step.serverCpuPerDeliveryUs.toFixed(2);
  const extra = step.closed > 0 ? ` closed=${step.closed} (${step.closeReason})` : step.publishErrors > 0 ? ` publish errors=${step.publishErrors} (${step.publishError})` : '';
  return `${step.rate}/s -> ${Math.round(step.deliveredPerSec)} deliveries/s, loss ${step.loss}, dup ${step.duplicates}, p99 ${p99} ms, server ${cpu} µs/delivery ${step.ok ? 'ok' : `FAIL (${step.failure})`}${extra}`;
}

async function runTarget(spec: SteppedSpec, name: TargetName, log: Log): Promise<SteppedTargetResult> {
  const steps: StepResult[] = [];
  let target: RunningTarget | null = null;
  let group: SubscriberGroup | null = null;
  let publisher: Publisher | null = null;
  let connectMs: number | null = null;
  try {
    target = await startTarget(name, spec.targetOptions);
    const connections = spec.rooms * spec.subscribersPerRoom;
    const started = await SubscriberGroup.start({
      endpoint: target.endpoint,
      connections,
      rooms: spec.rooms,
      processes: spec.clientProcesses,
      localAddresses: sourceAddresses(connections, CONNECTIONS_PER_ADDRESS),
      perAddress: CONNECTIONS_PER_ADDRESS,
      concurrency: 100,
      connectTimeoutMs: 30_000 + connections * 5,
      cpus: spec.targetOptions.pin?.load,
    });
    group = started.group;
    connectMs = started.outcome.ms;
    if (started.outcome.failed > 0) throw new Error(`${started.outcome.failed} of ${connections} connections failed: ${started.outcome.firstError}`);
    log(`  ${name}: ${connections} subscribers in ${Math.round(started.outcome.ms)} ms`);
    publisher = await Publisher.start(target.endpoint, spec.targetOptions.pin?.load);
    // A server's workers count with it (relais-workers).
    const serverPids = target.servers.flatMap((s) => withDescendants(s.pid));
    const loadPids = [...group.pids, publisher.child.pid];
    let failures = 0;
    for (const [index, rate] of spec.rates.entries()) {
      const stepId = index + 1;
      await group.begin(stepId);
      const run = publisher.run({
        warmStep: -stepId,
        step: stepId,
        rate,
        warmupMs: spec.warmupMs,
        measureMs: spec.measureMs,
        rooms: spec.rooms,
        padBytes: spec.padBytes,
        maxBufferedBytes: PUBLISHER_BUFFER_BYTES,
      });
      const measuringAt = await run.measuring;
      const server0 = cpuSnapshot(serverPids);
      const writes0 = writeSnapshot(serverPids);
      const load0 = cpuSnapshot(loadPids);
      const redis0 = cpuSnapshot(target.auxPids);
      const done = await run.done;
      await drain(group, done.sent * spec.subscribersPerRoom, spec.drainMs);
      const server1 = cpuSnapshot(serverPids);
      const writes1 = writeSnapshot(serverPids);
      const load1 = cpuSnapshot(loadPids);
      const redis1 = cpuSnapshot(target.auxPids);
      const stats = await group.end();
      const step = stepResult({
        rate,
        subscribersPerRoom: spec.subscribersPerRoom,
        sent: done.sent,
        elapsedMs: done.elapsedMs,
        behind: done.behind,
        errors: done.errors,
        firstError: done.firstError,
        measuringAt,
        stats,
        windowMs: server1.at - server0.at,
        serverCpuUs: cpuDelta(server0, server1),
        loadCpuUs: cpuDelta(load0, load1),
        redisCpuUs: cpuDelta(redis0, redis1),
        serverRssBytes: totalRss(serverPids),
        serverWrites: writeDelta(writes0, writes1),
      });
      steps.push(step);
      log(`  ${name}: ${describe(step)}`);
      failures = step.ok ? 0 : failures + 1;
      if (failures >= spec.maxFailures) break;
      await quiet(group, 5000);
    }
    return summarizeTarget(name, null, connectMs, steps);
  } catch (err) {
    log(`  ${name}: ERROR ${errorMessage(err)}`);
    return summarizeTarget(name, errorMessage(err), connectMs, steps);
  } finally {
    await publisher?.stop();
    await group?.stop();
    await target?.stop();
  }
}

function summarizeTarget(target: TargetName, error: string | null, connectMs: number | null, steps: StepResult[]): SteppedTargetResult {
  const sustained = steps.filter((s) => s.ok);
  const best = sustained.reduce<StepResult | null>((a, s) => (a === null || s.rate > a.rate ? s : a), null);
  return {
    target,
    error,
    connectMs,
    steps,
    maxSustainedRate: best?.rate ?? null,
    maxSustainedDeliveriesPerSec: best?.deliveredPerSec ?? null,
  };
}

/** Runs the rate steps against each target in turn: a fresh server and fresh clients per target. */
export async function runStepped(spec: SteppedSpec, log: Log): Promise<SteppedScenarioResult> {
  log(`scenario ${spec.id}: ${spec.title}`);
  const targets: SteppedTargetResult[] = [];
  for (const name of spec.targets) targets.push(await runTarget(spec, name, log));
  return {
    kind: 'stepped',
    id: spec.id,
    title: spec.title,
    rooms: spec.rooms,
    subscribersPerRoom: spec.subscribersPerRoom,
    warmupMs: spec.warmupMs,
    measureMs: spec.measureMs,
    targets,
  };
}
