/**
 * Side-by-side benchmark of Relais and its peers (issue 3). Usage: `npm run bench -- --help`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { installExitHandlers, killAll, repoRoot } from './children.js';
import { p99Chart } from './chart.js';
import { PRESETS, PRESET_NAMES, type PresetName, type ScenarioPreset } from './presets.js';
import { machineInfo } from './procstat.js';
import { runMarkdown, scenarioMarkdown } from './report.js';
import { isScenarioId, SCENARIO_IDS, type RunResult, type ScenarioId, type ScenarioResult } from './results.js';
import { runIdle } from './scenarios/idle.js';
import { runRecovery } from './scenarios/recovery.js';
import { runStepped } from './scenarios/stepped.js';
import { parsePinning, startPinnedRedis, type PinnedRedis } from './targets/pinned_redis.js';
import { isTargetName, MULTI_INSTANCE, type TargetName, type TargetOptions } from './targets/target.js';

const USAGE = `npm run bench -- [options]

  --scenario a,b,c,d,e,f|all   scenarios (default a)
       a fan-out 1 room x 1,000 subscribers, stepped rate
       b 500 rooms x 4 subscribers, random room per publication, stepped rate
       c idle memory: server RSS per idle subscribed connection (5k / 20k / 100k)
       d reconnect with recovery: 1,000 clients drop and resubscribe from their offset
       e multi-instance fan-out over Redis (socketio-redis, relais-redis)
       f burst: 1 room x 100 subscribers, 2,000 to 20,000 publications/s
  --targets ws,socketio,socketio-redis,relais,relais-protobuf,relais-redis,relais-baseline,relais-workers
                               (default: the scenario's own list)
  --preset smoke|short|full    sizes and durations (default short)
  --rates 25,50,100            publication rates of the stepped scenarios
  --counts 5000,20000          connection counts of scenario c
  --subscribers <n>            subscribers per room of the stepped scenarios
  --connections <n>            clients of scenario d (default 1,000; 10,000 needs 2 client processes
                               or more, each under the open-file limit: see --clients)
  --quiet-reconnect            scenario d: publishing stops just before the clients return, so the
                               server's CPU over the reconnect is the reconnects' alone
  --reconnect-spread-ms <n>    scenario d: each client reconnects after a random wait under n ms (as
                               the SDKs' backoff jitter spreads them) instead of all at once
  --warmup-ms <n> --measure-ms <n>
  --clients <n>                subscriber processes (default 2)
  --redis-url <url>            default redis://127.0.0.1:6379
  --pin <servers>:<load>       taskset CPU lists, e.g. 0:1 or 0-3:4-7: every target's server
                               processes and a Redis of the run's own (instead of --redis-url)
                               on the first, subscriber and publisher processes on the second
  --write-delay <ms>           client.write_delay of the Relais targets (default 0, the server's
                               default): messages for one connection within it share a write
  --relais-config '<json>'     a JSON object merged over the Relais targets' config, key by
                               top-level key (e.g. '{"chat":{"status":false}}')
  --baseline <dir>             another checkout of Relais, built, run as target relais-baseline
                               (compare a change with the revision before it in one run)
  --workers <n>                worker processes of the relais-workers target (default 2)
  --connect-timeout-s <n>      scenario c: time to open a step's connections (default 60 + 0.003 per connection)
  --server-node-flags "<f>"    node flags of the Relais server processes only (e.g. V8 heap flags)
  --out <dir>                  results directory (default bench/results)
  --chart <file.svg>           also write the p99 chart there (e.g. docs/performance-p99.svg)
  --from <results.json>        no run: print the tables and write the chart of a saved run

Relais runs from dist/ (npm run build first). Progress goes to stderr, tables to stdout.`;

function list(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map((v) => v.trim()).filter((v) => v !== '');
}

function numbers(value: string | undefined, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const parsed = list(value).map(Number);
  if (parsed.length === 0 || parsed.some((n) => !Number.isFinite(n) || n <= 0)) throw new Error(`${flag}: expected positive numbers, got "${value}"`);
  return parsed;
}

function positive(value: string | undefined, flag: string): number | undefined {
  return numbers(value, flag)?.[0];
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'a' },
    targets: { type: 'string' },
    preset: { type: 'string', default: 'short' },
    rates: { type: 'string' },
    counts: { type: 'string' },
    subscribers: { type: 'string' },
    connections: { type: 'string' },
    'quiet-reconnect': { type: 'boolean', default: false },
    'reconnect-spread-ms': { type: 'string' },
    'warmup-ms': { type: 'string' },
    'measure-ms': { type: 'string' },
    clients: { type: 'string', default: '2' },
    'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
    pin: { type: 'string' },
    'write-delay': { type: 'string' },
    'relais-config': { type: 'string' },
    baseline: { type: 'string' },
    workers: { type: 'string' },
    'connect-timeout-s': { type: 'string' },
    'server-node-flags': { type: 'string' },
    out: { type: 'string', default: 'bench/results' },
    chart: { type: 'string' },
    from: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

function revision(): string {
  const git = (...args: string[]): string => {
    try {
      return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  };
  const head = git('rev-parse', '--short', 'HEAD') || 'unknown';
  return git('status', '--porcelain', '--', 'src') === '' ? head : `${head} + local changes in src/`;
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function writeOutputs(run: RunResult, base: string | null): void {
  const markdown = runMarkdown(run);
  const svg = p99Chart(run);
  if (base !== null) {
    writeFileSync(`${base}.json`, `${JSON.stringify(run, null, 2)}\n`);
    writeFileSync(`${base}.md`, markdown);
    if (svg) writeFileSync(`${base}.svg`, svg);
  }
  if (svg && values.chart) writeFileSync(values.chart, svg);
}

function scenarioTargets(id: ScenarioId, preset: ScenarioPreset, asked: readonly TargetName[]): TargetName[] {
  if (asked.length === 0) return [...preset.defaultTargets];
  if (id !== 'e') return [...asked];
  const multi = asked.filter((t) => MULTI_INSTANCE.includes(t));
  if (multi.length < asked.length) log(`scenario e runs only the multi-instance targets (${MULTI_INSTANCE.join(', ')})`);
  return multi;
}

async function runScenario(id: ScenarioId, presetName: PresetName, asked: readonly TargetName[], targetOptions: TargetOptions): Promise<ScenarioResult> {
  const preset = PRESETS[presetName];
  const scenario = preset.scenarios[id];
  const targets = scenarioTargets(id, scenario, asked);
  const clientProcesses = positive(values.clients, '--clients') ?? 2;
  const warmupMs = positive(values['warmup-ms'], '--warmup-ms') ?? preset.warmupMs;
  const measureMs = positive(values['measure-ms'], '--measure-ms') ?? preset.measureMs;
  switch (scenario.kind) {
    case 'stepped':
      return runStepped(
        {
          id,
          title: scenario.title,
          targets,
          rooms: scenario.rooms,
          subscribersPerRoom: positive(values.subscribers, '--subscribers') ?? scenario.subscribersPerRoom,
          rates: numbers(values.rates, '--rates') ?? scenario.rates,
          warmupMs,
          measureMs,
          maxFailures: preset.maxFailures,
          clientProcesses,
          padBytes: 52,
          drainMs: 10_000,
          targetOptions,
        },
        log,
      );
    case 'idle':
      return runIdle(
        {
          id,
          title: scenario.title,
          targets,
          counts: numbers(values.counts, '--counts') ?? scenario.counts,
          subscribersPerRoom: scenario.subscribersPerRoom,
          settleMs: scenario.settleMs,
          cpuWindowMs: scenario.cpuWindowMs,
          settledBaselineMs: scenario.settledBaselineMs,
          perProcess: 15_000,
          ...(values['connect-timeout-s'] !== undefined ? { connectTimeoutMs: (positive(values['connect-timeout-s'], '--connect-timeout-s') ?? 0) * 1000 } : {}),
          targetOptions,
        },
        log,
      );
    case 'recovery':
      return runRecovery(
        {
          id,
          title: scenario.title,
          targets,
          clients: positive(values.connections, '--connections') ?? scenario.clients,
          rate: scenario.rate,
          beforeMs: 1500,
          downMs: scenario.downMs,
          afterMs: 2000,
          quiet: values['quiet-reconnect'],
          spreadMs: positive(values['reconnect-spread-ms'], '--reconnect-spread-ms') ?? 0,
          rounds: scenario.rounds,
          clientProcesses,
          padBytes: 52,
          // Room for every missed publication, with margin for a slow reconnect.
          targetOptions: { ...targetOptions, historySize: 1000 },
        },
        log,
      );
  }
}

async function main(): Promise<void> {
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.from !== undefined) {
    const run = JSON.parse(readFileSync(values.from, 'utf8')) as RunResult;
    writeOutputs(run, null);
    console.log(runMarkdown(run));
    return;
  }
  const presetName = PRESET_NAMES.find((p) => p === values.preset);
  if (presetName === undefined) throw new Error(`--preset: one of ${PRESET_NAMES.join(', ')}`);
  const askedIds = values.scenario === 'all' ? [...SCENARIO_IDS] : list(values.scenario);
  const ids = askedIds.filter(isScenarioId);
  if (ids.length === 0 || ids.length < askedIds.length) throw new Error(`--scenario: one or more of ${SCENARIO_IDS.join(', ')}, or all; got "${values.scenario}"`);
  const askedNames = list(values.targets);
  const unknown = askedNames.filter((t) => !isTargetName(t));
  if (unknown.length > 0) throw new Error(`--targets: unknown ${unknown.join(', ')}`);
  const asked = askedNames.filter(isTargetName);

  const writeDelayMs = values['write-delay'] === undefined ? undefined : Number(values['write-delay']);
  if (writeDelayMs !== undefined && !(Number.isInteger(writeDelayMs) && writeDelayMs >= 0 && writeDelayMs <= 1000)) throw new Error(`--write-delay: expected 0 to 1000 ms, got "${values['write-delay']}"`);
  const pin = values.pin === undefined ? undefined : parsePinning(values.pin);
  const relaisConfig = values['relais-config'] === undefined ? undefined : (JSON.parse(values['relais-config']) as unknown);
  if (relaisConfig !== undefined && (typeof relaisConfig !== 'object' || relaisConfig === null || Array.isArray(relaisConfig))) throw new Error('--relais-config: expected a JSON object');

  installExitHandlers();
  const startedAt = new Date().toISOString();
  const outDir = resolve(repoRoot, values.out);
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `${startedAt.replace(/[:.]/g, '-')}-${presetName}`);
  const run: RunResult = {
    startedAt,
    finishedAt: '',
    preset: presetName,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim(),
    revision: revision(),
    machine: machineInfo(),
    scenarios: [],
  };
  let pinnedRedis: PinnedRedis | null = null;
  try {
    if (pin !== undefined) {
      pinnedRedis = await startPinnedRedis(pin.servers);
      log(`pinned: servers and Redis (${pinnedRedis.url}) on CPUs ${pin.servers}, load processes on CPUs ${pin.load}`);
    }
    const targetOptions: TargetOptions = {
      historySize: 100,
      redisUrl: pinnedRedis?.url ?? values['redis-url'],
      ...(values.baseline !== undefined ? { baselineRoot: resolve(values.baseline) } : {}),
      ...(values.workers !== undefined ? { workers: positive(values.workers, '--workers') ?? 2 } : {}),
      ...(values['server-node-flags'] !== undefined ? { serverNodeFlags: list(values['server-node-flags'].replaceAll(' ', ',')) } : {}),
      ...(pin !== undefined ? { pin } : {}),
      ...(writeDelayMs !== undefined ? { relaisWriteDelayMs: writeDelayMs } : {}),
      ...(relaisConfig !== undefined ? { relaisConfig: relaisConfig as Record<string, unknown> } : {}),
    };
    for (const id of ids) {
      const result = await runScenario(id, presetName, asked, targetOptions);
      run.scenarios.push(result);
      run.finishedAt = new Date().toISOString();
      writeOutputs(run, base);
      console.log(`${scenarioMarkdown(result)}\n`);
    }
  } finally {
    await killAll();
    await pinnedRedis?.stop();
  }
  log(`results: ${relative(repoRoot, base)}.{json,md,svg}${values.chart ? `, chart: ${values.chart}` : ''}`);
}

main().catch(async (err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  await killAll();
  process.exit(1);
});
