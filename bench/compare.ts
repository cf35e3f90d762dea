/**
 * Compares a bench run with the reference figures committed in docs/performance.md (the
 * `bench-reference` JSON block), so that a slower change is seen before it lands:
 *
 *   npm run bench:compare -- [bench/results/<run>.json] [--tolerance 0.25] [--strict]
 *
 * (bench/compare_cli.ts). A figure is `slower` where the run is worse than the reference by
 * more than the tolerance: noise on this machine runs at 10-20 %.
 */
import type { RunResult } from './results.js';

/** A figure and which way is better. */
export type Direction = 'lower' | 'higher';

/** The reference block: figures by key `<scenario>/<target>[/<rate or count>]/<figure>`. */
export interface Reference {
  readonly revision: string;
  readonly figures: Readonly<Record<string, number>>;
}

export interface Comparison {
  readonly key: string;
  readonly reference: number;
  readonly run: number;
  /** run / reference. */
  readonly ratio: number;
  readonly slower: boolean;
}

const DIRECTION: Readonly<Record<string, Direction>> = {
  serverCpuPerDeliveryUs: 'lower',
  p99Ms: 'lower',
  maxSustainedRate: 'higher',
  bytesPerConnection: 'lower',
  bytesPerConnectionSettled: 'lower',
  recoveryP99Ms: 'lower',
};

/** The figures of a run under the reference's keys. */
export function runFigures(run: RunResult): Map<string, number> {
  const figures = new Map<string, number>();
  const put = (key: string, value: number | null | undefined): void => {
    if (value !== null && value !== undefined && Number.isFinite(value)) figures.set(key, value);
  };
  for (const scenario of run.scenarios) {
    if (scenario.kind === 'stepped') {
      for (const target of scenario.targets) {
        const base = `${scenario.id}/${target.target}`;
        put(`${base}/maxSustainedRate`, target.maxSustainedRate);
        for (const step of target.steps) {
          put(`${base}/${step.rate}/serverCpuPerDeliveryUs`, step.serverCpuPerDeliveryUs);
          put(`${base}/${step.rate}/p99Ms`, step.latencyMs.p99);
        }
      }
    } else if (scenario.kind === 'idle') {
      for (const target of scenario.targets) {
        for (const step of target.steps) {
          put(`${scenario.id}/${target.target}/${step.requested}/bytesPerConnection`, step.bytesPerConnection);
          put(`${scenario.id}/${target.target}/${step.requested}/bytesPerConnectionSettled`, step.bytesPerConnectionSettled);
        }
      }
    } else {
      for (const target of scenario.targets) {
        if (target.rounds.length > 0) put(`${scenario.id}/${target.target}/recoveryP99Ms`, Math.max(...target.rounds.map((r) => r.p99Ms ?? 0)));
      }
    }
  }
  return figures;
}

/** Each figure the run shares with the reference, worse by more than `tolerance` marked slower. */
export function compare(reference: Reference, run: ReadonlyMap<string, number>, tolerance: number): Comparison[] {
  const out: Comparison[] = [];
  for (const [key, value] of Object.entries(reference.figures)) {
    const measured = run.get(key);
    if (measured === undefined || value <= 0) continue;
    const direction = DIRECTION[key.slice(key.lastIndexOf('/') + 1)] ?? 'lower';
    const ratio = measured / value;
    const slower = direction === 'lower' ? ratio > 1 + tolerance : ratio < 1 - tolerance;
    out.push({ key, reference: value, run: measured, ratio, slower });
  }
  return out;
}

/** The `bench-reference` JSON block of docs/performance.md. */
export function readReference(markdown: string): Reference {
  const match = /<!-- bench-reference -->\s*```json\n([\s\S]*?)\n```/.exec(markdown);
  if (!match?.[1]) throw new Error('docs/performance.md has no bench-reference block');
  return JSON.parse(match[1]) as Reference;
}

/**
 * The reference block for a run: Relais's figures (targets relais and relais-redis), the
 * stepped ones only up to the largest sustained rate (beyond it, an overloaded step's
 * figures are noise).
 */
export function referenceOf(run: RunResult): Reference {
  const figures: Record<string, number> = {};
  const all = runFigures(run);
  for (const [key, value] of all) {
    const [scenario, target, rate] = key.split('/');
    if (target !== 'relais' && target !== 'relais-redis') continue;
    const max = all.get(`${scenario}/${target}/maxSustainedRate`);
    const stepRate = Number(rate);
    if (Number.isFinite(stepRate) && max !== undefined && stepRate > max) continue;
    figures[key] = Math.round(value * 100) / 100;
  }
  return { revision: run.revision ?? 'unknown', figures };
}

