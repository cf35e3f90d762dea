import type { RunResult, SteppedScenarioResult } from './results.js';
import { P99_LIMIT_MS } from './results.js';
import type { TargetName } from './targets/target.js';

const COLORS: Readonly<Record<TargetName, string>> = {
  ws: '#6b7280',
  socketio: '#2563eb',
  'socketio-redis': '#7c3aed',
  relais: '#dc2626',
  'relais-protobuf': '#be185d',
  'relais-redis': '#ea580c',
  'relais-baseline': '#f59e0b',
  'relais-workers': '#b91c1c',
};

const PANEL_W = 460;
const PANEL_H = 300;
const MARGIN = { left: 56, right: 16, top: 34, bottom: 44 };

const esc = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** 1, 2, 5, 10, 20, 50, ... within [min, max]. */
function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let decade = 10 ** Math.floor(Math.log10(min)); decade <= max; decade *= 10) {
    for (const m of [1, 2, 5]) {
      const v = decade * m;
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

const label = (v: number): string => (v >= 1000 ? `${v / 1000}k` : String(v));

function panel(s: SteppedScenarioResult, x0: number, y0: number): string {
  const points = s.targets.flatMap((t) => t.steps.filter((step) => step.latencyMs.p99 !== null));
  const out: string[] = [`<g transform="translate(${x0},${y0})">`, `<text x="${PANEL_W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${esc(`${s.id}. ${s.title.split(',')[0] ?? ''}: ${s.rooms} x ${s.subscribersPerRoom}`)}</text>`];
  if (points.length === 0) {
    out.push(`<text x="${PANEL_W / 2}" y="${PANEL_H / 2}" text-anchor="middle" font-size="12">no data</text></g>`);
    return out.join('\n');
  }
  const rates = points.map((p) => p.rate);
  const p99s = points.map((p) => p.latencyMs.p99 ?? 1);
  // A little room on both sides so that the first and last points are not on the frame.
  const xMin = Math.min(...rates) / 1.25;
  const xMax = Math.max(...rates) * 1.25;
  const yMin = Math.max(0.1, Math.min(...p99s, 1));
  const yMax = Math.max(...p99s, P99_LIMIT_MS * 2);
  const w = PANEL_W - MARGIN.left - MARGIN.right;
  const h = PANEL_H - MARGIN.top - MARGIN.bottom;
  const sx = (v: number): number => MARGIN.left + ((Math.log(v) - Math.log(xMin)) / (Math.log(xMax) - Math.log(xMin))) * w;
  const sy = (v: number): number => MARGIN.top + h - ((Math.log(Math.max(v, yMin)) - Math.log(yMin)) / (Math.log(yMax) - Math.log(yMin))) * h;
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
  for (const t of logTicks(xMin, xMax)) {
    out.push(`<line x1="${sx(t).toFixed(1)}" y1="${MARGIN.top}" x2="${sx(t).toFixed(1)}" y2="${MARGIN.top + h}" stroke="#eee"/>`);
    out.push(`<text x="${sx(t).toFixed(1)}" y="${MARGIN.top + h + 14}" text-anchor="middle" font-size="10">${label(t)}</text>`);
  }
  for (const t of logTicks(yMin, yMax)) {
    out.push(`<line x1="${MARGIN.left}" y1="${sy(t).toFixed(1)}" x2="${MARGIN.left + w}" y2="${sy(t).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${MARGIN.left - 4}" y="${(sy(t) + 3).toFixed(1)}" text-anchor="end" font-size="10">${label(t)}</text>`);
  }
  const limitY = sy(P99_LIMIT_MS).toFixed(1);
  out.push(`<line x1="${MARGIN.left}" y1="${limitY}" x2="${MARGIN.left + w}" y2="${limitY}" stroke="#000" stroke-dasharray="4 3"/>`);
  out.push(`<text x="${MARGIN.left + w - 2}" y="${Number(limitY) - 3}" text-anchor="end" font-size="9">${P99_LIMIT_MS} ms</text>`);
  out.push(`<text x="${MARGIN.left + w / 2}" y="${PANEL_H - 8}" text-anchor="middle" font-size="11">publications/s (log)</text>`);
  out.push(`<text transform="translate(14,${MARGIN.top + h / 2}) rotate(-90)" text-anchor="middle" font-size="11">p99 latency, ms (log)</text>`);
  s.targets.forEach((t, i) => {
    const color = COLORS[t.target];
    const pts = t.steps.filter((step) => step.latencyMs.p99 !== null).map((step) => [sx(step.rate), sy(step.latencyMs.p99 ?? yMin), step.ok] as const);
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y, ok] of pts) out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${ok ? color : '#fff'}" stroke="${color}"/>`);
    out.push(`<rect x="${MARGIN.left + 8}" y="${MARGIN.top + 8 + i * 14}" width="10" height="3" fill="${color}"/>`);
    out.push(`<text x="${MARGIN.left + 22}" y="${MARGIN.top + 12 + i * 14}" font-size="10">${esc(t.target)}${t.error ? ' (error)' : ''}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** p99 latency against publication rate, one panel per stepped scenario; hollow points are unsustained steps. */
export function p99Chart(run: RunResult): string | null {
  const stepped = run.scenarios.filter((s): s is SteppedScenarioResult => s.kind === 'stepped');
  if (stepped.length === 0) return null;
  const columns = Math.min(2, stepped.length);
  const rows = Math.ceil(stepped.length / columns);
  const width = columns * PANEL_W;
  const height = rows * PANEL_H + 24;
  const panels = stepped.map((s, i) => panel(s, (i % columns) * PANEL_W, 24 + Math.floor(i / columns) * PANEL_H));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="8" y="16" font-size="12">${esc(`p99 latency vs rate; ${run.machine.nproc} cores (${run.machine.cpuModel}), Node ${run.machine.node}, ${run.startedAt}; hollow: not sustained`)}</text>`,
    ...panels,
    '</svg>',
    '',
  ].join('\n');
}
