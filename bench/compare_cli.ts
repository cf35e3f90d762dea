/**
 * `npm run bench:compare -- [bench/results/<run>.json] [--tolerance 0.25] [--strict]`:
 * compares a run (default: the newest in bench/results) with the reference figures of
 * docs/performance.md, one line per figure both have; with --strict the exit code is 1 when
 * any figure is slower. `--print-reference` prints the block that makes a run the reference.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot } from './children.js';
import { compare, readReference, referenceOf, runFigures } from './compare.js';
import type { RunResult } from './results.js';

function newestRun(): string {
  const dir = join(repoRoot, 'bench/results');
  const runs = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort();
  const newest = runs.at(-1);
  if (!newest) throw new Error('no run in bench/results: run `npm run bench` first');
  return join(dir, newest);
}


const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { tolerance: { type: 'string', default: '0.25' }, strict: { type: 'boolean', default: false }, 'print-reference': { type: 'boolean', default: false } },
});
const file = positionals[0] ?? newestRun();
if (values['print-reference']) {
  // The block to put in docs/performance.md when a run becomes the new reference.
  console.log(`<!-- bench-reference -->\n\`\`\`json\n${JSON.stringify(referenceOf(JSON.parse(readFileSync(file, 'utf8')) as RunResult), null, 2)}\n\`\`\``);
  process.exit(0);
}
const reference = readReference(readFileSync(join(repoRoot, 'docs/performance.md'), 'utf8'));
const run = JSON.parse(readFileSync(file, 'utf8')) as RunResult;
const rows = compare(reference, runFigures(run), Number(values.tolerance));
console.log(`${file} (revision ${run.revision ?? '?'}) against the reference of docs/performance.md (revision ${reference.revision})`);
if (rows.length === 0) console.log('no figure in common: run the scenarios and targets the reference names');
for (const r of rows) console.log(`${r.slower ? 'slower' : '      '}  ${r.key.padEnd(42)} ${String(r.reference).padStart(10)} -> ${r.run.toFixed(2).padStart(10)}  ${r.ratio.toFixed(2)}x`);
if (values.strict && rows.some((r) => r.slower)) process.exitCode = 1;
