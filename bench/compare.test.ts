import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './children.js';
import { compare, readReference, referenceOf, runFigures } from './compare.js';
import type { RunResult } from './results.js';

const committed = JSON.parse(readFileSync(join(repoRoot, 'bench/results/2026-12-04T20-57-22-627Z-short.json'), 'utf8')) as RunResult;

describe('bench:compare', () => {
  it('reads the reference of docs/performance.md, which the committed run it came from matches exactly', () => {
    const reference = readReference(readFileSync(join(repoRoot, 'docs/performance.md'), 'utf8'));
    const rows = compare(reference, runFigures(committed), 0.25);
    expect(rows.length).toBe(Object.keys(reference.figures).length);
    expect(rows.filter((r) => Math.abs(r.ratio - 1) > 0.01)).toEqual([]);
  });

  it('marks a figure slower by direction: more CPU or latency, a lower sustained rate', () => {
    const reference = referenceOf(committed);
    const run = new Map(Object.entries(reference.figures));
    run.set('a/relais/50/serverCpuPerDeliveryUs', (reference.figures['a/relais/50/serverCpuPerDeliveryUs'] ?? 0) * 1.5);
    run.set('f/relais/maxSustainedRate', (reference.figures['f/relais/maxSustainedRate'] ?? 0) / 2);
    run.set('a/relais/maxSustainedRate', (reference.figures['a/relais/maxSustainedRate'] ?? 0) * 2);
    const slower = compare(reference, run, 0.25)
      .filter((r) => r.slower)
      .map((r) => r.key);
    expect(slower).toEqual(['a/relais/50/serverCpuPerDeliveryUs', 'f/relais/maxSustainedRate']);
  });
});
