import type { FilterNode } from '../protocol/types.js';
import { RelaisError } from './errors.js';

/** Whether a publication with these tags passes a subscriber's filter. */
export type TagFilter = (tags: Readonly<Record<string, string>> | undefined) => boolean;

/** A filter larger than this is refused: it runs once per publication per subscriber. */
export const MAX_FILTER_NODES = 64;

const NUMERIC = new Set(['lt', 'lte', 'gt', 'gte']);
const SINGLE = new Set(['eq', 'neq', 'sw', 'ew', 'ct', ...NUMERIC]);

function invalid(message: string): RelaisError {
  return new RelaisError('BAD_REQUEST', `invalid tags filter: ${message}`);
}

function toNumber(text: string): number | undefined {
  if (text.trim() === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Compiles a filter on publication tags (Centrifugo's FilterNode). A leaf (`op` empty)
 * compares the tag `key`: `eq`, `neq`, `in`, `nin` (against `vals`), `ex`, `nex`, `sw`
 * (starts with), `ew` (ends with), `ct` (contains), and `lt`, `lte`, `gt`, `gte`, which
 * compare as numbers and fail when the tag is not one. A missing tag fails every
 * comparison but `neq`, `nin` and `nex`. `and` and `or` take one or more nodes, `not`
 * exactly one. Throws BAD_REQUEST, naming the fault, for anything else.
 */
export function compileTagFilter(root: FilterNode): TagFilter {
  let count = 0;
  const compile = (node: FilterNode): TagFilter => {
    if (++count > MAX_FILTER_NODES) throw invalid(`more than ${MAX_FILTER_NODES} nodes`);
    const op = node.op ?? '';
    const children = node.nodes ?? [];
    if (op === 'and' || op === 'or' || op === 'not') {
      if (node.key || node.cmp || node.val || node.vals?.length) throw invalid(`"${op}" takes nodes only, no key, cmp or values`);
      if (children.length === 0) throw invalid(`"${op}" needs at least one node`);
      if (op === 'not' && children.length !== 1) throw invalid('"not" takes exactly one node');
      const compiled = children.map(compile);
      if (op === 'not') {
        const inner = compiled[0] as TagFilter;
        return (tags) => !inner(tags);
      }
      return op === 'and' ? (tags) => compiled.every((f) => f(tags)) : (tags) => compiled.some((f) => f(tags));
    }
    if (op !== '') throw invalid(`unknown op "${op}" (expected "", "and", "or" or "not")`);
    if (children.length > 0) throw invalid('a comparison (op "") has no nodes');
    const key = node.key ?? '';
    if (key === '') throw invalid('a comparison needs a key');
    const cmp = node.cmp ?? '';
    const val = node.val ?? '';
    const vals = node.vals ?? [];
    if (cmp === 'ex') return (tags) => tags?.[key] !== undefined;
    if (cmp === 'nex') return (tags) => tags?.[key] === undefined;
    if (cmp === 'in' || cmp === 'nin') {
      if (vals.length === 0) throw invalid(`"${cmp}" needs vals`);
      const set = new Set(vals);
      if (cmp === 'in') return (tags) => tags?.[key] !== undefined && set.has(tags[key]);
      return (tags) => tags?.[key] === undefined || !set.has(tags[key]);
    }
    if (!SINGLE.has(cmp)) throw invalid(`unknown cmp "${cmp}"`);
    if (NUMERIC.has(cmp)) {
      const bound = toNumber(val);
      if (bound === undefined) throw invalid(`"${cmp}" needs a numeric val, got "${val}"`);
      const test = cmp === 'lt' ? (n: number) => n < bound : cmp === 'lte' ? (n: number) => n <= bound : cmp === 'gt' ? (n: number) => n > bound : (n: number) => n >= bound;
      return (tags) => {
        const tag = tags?.[key];
        if (tag === undefined) return false;
        const n = toNumber(tag);
        return n !== undefined && test(n);
      };
    }
    switch (cmp) {
      case 'eq':
        return (tags) => tags?.[key] === val;
      case 'neq':
        return (tags) => tags?.[key] !== val;
      case 'sw':
        return (tags) => tags?.[key]?.startsWith(val) === true;
      case 'ew':
        return (tags) => tags?.[key]?.endsWith(val) === true;
      default:
        return (tags) => tags?.[key]?.includes(val) === true;
    }
  };
  return compile(root);
}
