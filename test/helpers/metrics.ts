import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import type { RelaisProcess } from './relais.js';

/** Scrapes `/metrics` and parses it with a Prometheus text-format parser. */
export async function scrape(relais: RelaisProcess): Promise<Map<string, ParsedFamily>> {
  const response = await fetch(`${relais.httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const families = parsePrometheusTextFormat(await response.text());
  return new Map(families.map((f) => [f.name, f]));
}

/** A sample's value (counter, gauge) for the given labels; 0 when absent. */
export function sample(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  if (!family) throw new Error(`metric ${name} missing`);
  const found = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (!found) return 0;
  return Number(found.value ?? found.count ?? 0);
}
