import type { ScenarioId } from './results.js';
import type { TargetName } from './targets/target.js';

export const PRESET_NAMES = ['smoke', 'short', 'full'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface SteppedPreset {
  readonly kind: 'stepped';
  readonly title: string;
  readonly rooms: number;
  readonly subscribersPerRoom: number;
  readonly rates: readonly number[];
  readonly defaultTargets: readonly TargetName[];
}

export interface IdlePreset {
  readonly kind: 'idle';
  readonly title: string;
  readonly counts: readonly number[];
  readonly subscribersPerRoom: number;
  readonly settleMs: number;
  readonly cpuWindowMs: number;
  /** Time after start for the settled baseline (V8's idle GC shrinks the heap about 8 s after start). */
  readonly settledBaselineMs: number;
  readonly defaultTargets: readonly TargetName[];
}

export interface RecoveryPreset {
  readonly kind: 'recovery';
  readonly title: string;
  readonly clients: number;
  readonly rate: number;
  readonly downMs: number;
  readonly rounds: number;
  readonly defaultTargets: readonly TargetName[];
}

export type ScenarioPreset = SteppedPreset | IdlePreset | RecoveryPreset;

export interface Preset {
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Failed steps in a row after which a target stops climbing. */
  readonly maxFailures: number;
  readonly scenarios: Readonly<Record<ScenarioId, ScenarioPreset>>;
}

const SINGLE: readonly TargetName[] = ['ws', 'socketio', 'relais'];
const MULTI: readonly TargetName[] = ['socketio-redis', 'relais-redis'];

function scenarios(scale: 'smoke' | 'short' | 'full'): Record<ScenarioId, ScenarioPreset> {
  const pick = <T>(smoke: T, short: T, full: T): T => (scale === 'smoke' ? smoke : scale === 'short' ? short : full);
  return {
    a: {
      kind: 'stepped',
      title: 'fan-out',
      rooms: 1,
      subscribersPerRoom: pick(10, 1000, 1000),
      rates: pick([20, 40], [25, 50, 100, 150, 200, 300, 500, 1000, 2000], [25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000]),
      defaultTargets: SINGLE,
    },
    b: {
      kind: 'stepped',
      title: 'many rooms, random room per publication',
      rooms: pick(5, 500, 500),
      subscribersPerRoom: 4,
      rates: pick([50, 100], [1000, 5000, 10000, 15000, 20000, 30000], [1000, 2500, 5000, 7500, 10000, 12500, 15000, 17500, 20000, 25000, 30000]),
      defaultTargets: SINGLE,
    },
    c: {
      kind: 'idle',
      title: 'idle memory: server RSS per idle subscribed connection',
      counts: pick([100], [5000, 20000], [5000, 20000, 100000]),
      subscribersPerRoom: 1,
      settleMs: pick(500, 3000, 5000),
      // Two rounds of the server's 25 s pings at least, beyond the short preset's one.
      cpuWindowMs: pick(500, 30_000, 60_000),
      settledBaselineMs: pick(500, 15_000, 15_000),
      defaultTargets: SINGLE,
    },
    d: {
      kind: 'recovery',
      title: 'reconnect with recovery while publications flow',
      clients: pick(10, 1000, 1000),
      rate: 50,
      downMs: 2000,
      rounds: pick(1, 2, 3),
      defaultTargets: [...SINGLE, 'relais-redis'],
    },
    e: {
      kind: 'stepped',
      title: 'multi-instance fan-out over Redis, subscribers spread over 2 instances',
      rooms: 1,
      subscribersPerRoom: pick(10, 1000, 1000),
      rates: pick([20, 40], [25, 50, 100, 150, 200, 300, 500, 1000], [25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1000]),
      defaultTargets: MULTI,
    },
    f: {
      kind: 'stepped',
      title: 'burst, several frames pending per connection',
      rooms: 1,
      subscribersPerRoom: pick(10, 100, 100),
      // Issue 3 asks for 2,000 to 20,000; the lower steps find the peers' largest rate, which is below 2,000 here.
      rates: pick([200, 400], [500, 1000, 2000, 4000, 8000, 14000, 20000], [250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 10000, 15000, 20000]),
      defaultTargets: SINGLE,
    },
  };
}

export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  smoke: { warmupMs: 300, measureMs: 1000, maxFailures: 99, scenarios: scenarios('smoke') },
  short: { warmupMs: 1000, measureMs: 3000, maxFailures: 2, scenarios: scenarios('short') },
  full: { warmupMs: 2000, measureMs: 8000, maxFailures: 2, scenarios: scenarios('full') },
};
