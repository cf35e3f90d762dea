import type { IdleScenarioResult, RecoveryScenarioResult, RunResult, ScenarioResult, SteppedScenarioResult, SteppedTargetResult } from './results.js';
import { P99_LIMIT_MS } from './results.js';
import type { TargetName } from './targets/target.js';

const dash = '-';

function num(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return dash;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? dash : `${(a / b).toFixed(2)}x`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const mb = (bytes: number | null): string => (bytes === null ? dash : num(bytes / 1048576, 1));

function steppedSummary(s: SteppedScenarioResult): string {
  const byName = new Map(s.targets.map((t) => [t.target, t]));
  const ws = byName.get('ws')?.maxSustainedRate;
  const sio = byName.get(s.id === 'e' ? 'socketio-redis' : 'socketio')?.maxSustainedRate;
  const rows = s.targets.map((t) => {
    const best = t.steps.find((step) => step.ok && step.rate === t.maxSustainedRate);
    return [
      t.target,
      t.error ? `error: ${t.error.split('\n')[0]?.slice(0, 120) ?? ''}` : num(t.maxSustainedRate),
      num(t.maxSustainedDeliveriesPerSec),
      ratio(t.maxSustainedRate, ws),
      ratio(t.maxSustainedRate, sio),
      num(best?.serverCpuPerDeliveryUs, 2),
      num(best?.latencyMs.p99, 1),
    ];
  });
  return table(['target', 'largest sustained pubs/s', 'deliveries/s', 'vs ws', s.id === 'e' ? 'vs socketio-redis' : 'vs socketio', 'server µs/delivery', 'p99 ms'], rows);
}

/** Server CPU per delivery at each rate, side by side, with Relais's ratios to the peers. */
function cpuPivot(s: SteppedScenarioResult): string {
  const rates = [...new Set(s.targets.flatMap((t) => t.steps.map((step) => step.rate)))].sort((a, b) => a - b);
  const cpuAt = (t: SteppedTargetResult | undefined, rate: number): number | null => t?.steps.find((step) => step.rate === rate)?.serverCpuPerDeliveryUs ?? null;
  const byName = new Map(s.targets.map((t) => [t.target, t]));
  const relais = byName.get(s.id === 'e' ? 'relais-redis' : 'relais');
  const peerNames: readonly TargetName[] = s.id === 'e' ? ['socketio-redis'] : ['ws', 'socketio', 'relais-baseline'];
  const peers = peerNames.filter((p) => byName.has(p));
  const header = ['pubs/s', 'deliveries/s', ...s.targets.map((t) => t.target), ...(relais ? peers.map((p) => `${relais.target} / ${p}`) : [])];
  const rows = rates.map((rate) => [
    num(rate),
    num(rate * s.subscribersPerRoom),
    ...s.targets.map((t) => num(cpuAt(t, rate), 2)),
    ...(relais ? peers.map((p) => ratio(cpuAt(relais, rate), cpuAt(byName.get(p), rate))) : []),
  ]);
  return table(header, rows);
}

function steppedDetail(s: SteppedScenarioResult): string {
  const rows = s.targets.flatMap((t) =>
    t.steps.map((step) => [
      t.target,
      num(step.rate),
      num(step.actualRate),
      num(step.deliveredPerSec),
      num(step.loss),
      num(step.duplicates),
      num(step.latencyMs.p50, 1),
      num(step.latencyMs.p95, 1),
      num(step.latencyMs.p99, 1),
      num(step.serverCpuPerDeliveryUs, 2),
      num(step.serverCpuPercent),
      num(step.loadCpuPerDeliveryUs, 2),
      step.redisCpuPerDeliveryUs === null ? dash : num(step.redisCpuPerDeliveryUs, 2),
      mb(step.serverRssBytes),
      num(step.serverWriteBytesPerDelivery, 1),
      num(step.serverWritesPerDelivery, 3),
      // Runs saved before the failure reason existed have none.
      step.ok ? 'yes' : step.failure ? `no (${step.failure})` : 'no',
    ]),
  );
  return table(
    ['target', 'pubs/s', 'sent/s', 'deliveries/s', 'loss', 'dup', 'p50 ms', 'p95 ms', 'p99 ms', 'server µs/deliv', 'server CPU %', 'load µs/deliv', 'redis µs/deliv', 'server RSS MB', 'server bytes written/deliv', 'server writes/deliv', 'sustained'],
    rows,
  );
}

function stepped(s: SteppedScenarioResult): string {
  const errors = s.targets.filter((t) => t.error).map((t) => `- ${t.target}: ${t.error ?? ''}`);
  return [
    `### ${s.id}. ${s.title}: ${num(s.rooms)} room${s.rooms > 1 ? 's' : ''} x ${num(s.subscribersPerRoom)} subscribers`,
    '',
    `Each step ${s.warmupMs / 1000} s warm-up + ${s.measureMs / 1000} s measured. Sustained: loss 0, no duplicate, no dropped connection, publisher on pace and p99 < ${P99_LIMIT_MS} ms.`,
    '',
    steppedSummary(s),
    '',
    'Server CPU per delivered message (µs), by rate:',
    '',
    cpuPivot(s),
    '',
    'Every step:',
    '',
    steppedDetail(s),
    ...(errors.length > 0 ? ['', 'Errors:', '', ...errors] : []),
  ].join('\n');
}

function idle(s: IdleScenarioResult): string {
  const rows = s.targets.flatMap((t) =>
    t.error && t.steps.length === 0
      ? [[t.target, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, `error: ${t.error.slice(0, 120)}`]]
      : t.steps.map((step) => [
          t.target,
          num(step.planned === 0 ? step.requested : step.connected),
          num(step.failed),
          mb(step.rssBaselineBytes),
          mb(step.rssLoadedBytes),
          step.bytesPerConnection === null ? dash : num(step.bytesPerConnection / 1024, 1),
          mb(step.rssSettledBaselineBytes ?? null),
          mb(step.rssIdledBytes ?? null),
          step.bytesPerConnectionSettled === null || step.bytesPerConnectionSettled === undefined ? dash : num(step.bytesPerConnectionSettled / 1024, 1),
          `${mb(step.rssFilesOnceSettledBaselineBytes ?? null)} / ${mb(step.rssFilesOnceIdledBytes ?? null)}`,
          step.idleCpuPer10k === null || step.idleCpuPer10k === undefined ? dash : num(step.idleCpuPer10k, 2),
          step.note + (step.failed > 0 ? ` ${step.firstError}` : ''),
        ]),
  );
  return [
    `### ${s.id}. ${s.title}`,
    '',
    `Each connection subscribed to ${s.subscribersPerRoom === 1 ? 'a channel of its own' : `a channel shared by ${s.subscribersPerRoom}`}; RSS read ${s.settleMs / 1000} s after the last subscription; a fresh server per count. KB per connection = (RSS loaded - RSS before) / connections. Idle CPU: the server's CPU over the next ${(s.cpuWindowMs ?? 0) / 1000} s (pings only), in % of one core per 10,000 connections.${s.settledBaselineMs === undefined ? '' : ` At rest: RSS before read ${s.settledBaselineMs / 1000} s after start (once V8's idle GC has given back the young generation start-up grew), RSS loaded at the end of the idle CPU window; files once: the same two readings summed over the server's processes with the file-backed pages (the node binary, which every worker maps) counted once.`}`,
    '',
    table(['target', 'connections', 'failed', 'RSS before MB', 'RSS loaded MB', 'KB per connection', 'at rest: before MB', 'at rest: loaded MB', 'at rest: KB per connection', 'at rest, files once: before / loaded MB', 'idle CPU % per 10k', 'note'], rows),
  ].join('\n');
}

function recovery(s: RecoveryScenarioResult): string {
  const rows = s.targets.flatMap((t) => {
    const blank = [dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash, dash];
    if (!t.applicable) return [[t.target, 'n/a', 'n/a (no recovery)', ...blank]];
    if (t.error && t.rounds.length === 0) return [[t.target, dash, `error: ${t.error.slice(0, 120)}`, ...blank]];
    return t.rounds.map((r, i) => [
      t.target,
      String(i + 1),
      `${num(r.recovered)} / ${num(r.clients)}${r.spreadMs ? ` (spread ${num(r.spreadMs)} ms)` : ''}`,
      num(r.notRecovered + r.failed),
      num(r.replayedMean, 1),
      num(r.p50Ms, 1),
      num(r.p99Ms, 1),
      num(r.maxMs, 1),
      `${num(r.openP50Ms, 1)} / ${num(r.openP99Ms, 1)}`,
      `${num(r.readyP50Ms, 1)} / ${num(r.readyP99Ms, 1)}`,
      num(r.listenOverflows),
      `${num(r.serverCpuMs ?? null)} / ${num(r.loadCpuMs ?? null)}`,
      num(r.fanoutCpuMsPerS ?? null),
      r.serverCpuMs === null || r.serverCpuMs === undefined ? dash : `${(r.serverCpuMs / r.clients).toFixed(2)}${r.quiet ? ' (quiet)' : ''}`,
      num(r.loss),
      num(r.duplicates),
      num(r.offsetGaps),
      num(r.offsetDuplicates ?? null),
    ]);
  });
  return [
    `### ${s.id}. ${s.title}: ${num(s.clients)} clients`,
    '',
    `${s.rate} publications/s into one channel all along; every client drops at once, stays away ${s.downMs / 1000} s, reconnects at once and resubscribes with its offset and epoch. Time: from opening the new socket to the subscribe reply with the missed publications; the socket-open and connect-reply columns show how much of it went to TCP + upgrade and to the connect handshake. Listen overflows: SYNs the kernel dropped because an accept queue was full during the reconnect (machine-wide counter); each costs its client a 1 s SYN retransmit. CPU ms: what the server processes and the load processes (subscribers and publisher, on the same cores) spent from the reconnect order to the last subscribe reply; the server's share is what the burst costs Relais itself. Fan-out alone: the server's CPU per second before the drop (all clients live). Per reconnect: the server's CPU over the window per client, live fan-out included, except in a quiet run (\`--quiet-reconnect\`: publishing stops just before the clients return, so the window holds the reconnects alone). Loss and duplicates over the whole round.`,
    '',
    table(['target', 'round', 'recovered', 'not recovered', 'replayed per client', 'p50 ms', 'p99 ms', 'max ms', 'socket open p50 / p99', 'connect reply p50 / p99', 'listen overflows', 'CPU ms server / load', 'server CPU ms/s of fan-out alone', 'server CPU ms per reconnect', 'loss', 'dup', 'offset gaps', 'offset dup'], rows),
  ].join('\n');
}

export function scenarioMarkdown(s: ScenarioResult): string {
  switch (s.kind) {
    case 'stepped':
      return stepped(s);
    case 'idle':
      return idle(s);
    case 'recovery':
      return recovery(s);
  }
}

export function machineMarkdown(run: RunResult): string {
  const m = run.machine;
  return [
    `- CPU: ${m.cpuModel}, nproc ${m.nproc}; memory ${num(m.memTotalMB)} MB; Linux ${m.kernel}; Node ${m.node}; open files hard limit ${num(m.fdHardLimit)}`,
    `- load average at start: ${m.loadAverageAtStart}`,
    `- revision ${run.revision ?? 'unknown'}; preset ${run.preset}; started ${run.startedAt}, finished ${run.finishedAt}`,
    `- command: \`${run.command}\``,
  ].join('\n');
}

/** The whole run as markdown: the machine, then a section per scenario. */
export function runMarkdown(run: RunResult): string {
  return [`## Run of ${run.startedAt}`, '', machineMarkdown(run), '', ...run.scenarios.map((s) => `${scenarioMarkdown(s)}\n`)].join('\n');
}
