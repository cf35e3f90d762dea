/**
 * Where the heap bytes of an idle subscribed connection go: heap snapshots of a Relais server
 * (from dist/) before any connection and with N idle subscribed connections, grouped by
 * constructor (objects, closures, native) or by kind (strings, arrays, code), and the
 * difference divided by N. A snapshot runs a full GC first, so only live bytes count.
 *
 *   node --import tsx bench/heap/run.ts [--connections 5000] [--server-node-flags "--max-semi-space-size=1"] [--top 30]
 *     [--retainers]   each group split by what holds it (`kind <- owner.property`)
 *     [--relais-config '<json>']  merged over the server's config, as bench/run.ts does
 *     [--workers [--process worker|primary]]  `relais serve --workers 1`: snapshots of its worker
 *                     (by default) or of its primary, which holds the built-in bus
 *     [--depth 2]     with --retainers, the owner's owner too (`kind <- owner.property <- its owner.property`)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { installExitHandlers } from '../children.js';
import { sleep } from '../net.js';
import { rssBytes, withDescendants } from '../procstat.js';
import { SubscriberGroup } from '../scenarios/load_group.js';
import { sourceAddresses } from '../scenarios/common.js';
import { startRelais } from '../targets/relais.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '5000' },
    'server-node-flags': { type: 'string', default: '' },
    top: { type: 'string', default: '30' },
    retainers: { type: 'boolean', default: false },
    depth: { type: 'string', default: '1' },
    'relais-config': { type: 'string' },
    workers: { type: 'boolean', default: false },
    process: { type: 'string', default: 'worker' },
  },
});
const connections = Number(values.connections);
const top = Number(values.top);
const depth = Math.max(1, Number(values.depth));
const SNAPSHOT_DEADLINE_MS = 120_000;

/** Self size and count of the live heap objects, by group. */
type Groups = Map<string, { count: number; bytes: number }>;

interface HeapSnapshotJson {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/** Groups by kind; with `retainers`, each group split by its first strong retainer (`kind <- owner.edge`). */
function groupSnapshot(file: string, retainers: boolean): Groups {
  const json = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshotJson;
  const { meta } = json.snapshot;
  const fields = meta.node_fields;
  const types = meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const edgeCountAt = fields.indexOf('edge_count');
  const keyOf = (i: number): string => {
    const type = types[json.nodes[i + typeAt] ?? 0] ?? '?';
    const name = json.strings[json.nodes[i + nameAt] ?? 0] ?? '?';
    // Objects, closures and native objects by name; strings, arrays, code and the rest by kind.
    if (type === 'object' || type === 'closure' || type === 'native') return `${type} ${name.slice(0, 60)}`;
    return type === 'hidden' || type === 'object shape' ? `${type} ${name.slice(0, 40)}` : type;
  };
  /** First strong retainer of each node: its index in `nodes` and the edge's label. */
  const owner = new Map<number, { at: number; label: string }>();
  if (retainers) {
    const edgeWidth = meta.edge_fields.length;
    const edgeTypes = meta.edge_types[0];
    const edgeTypeAt = meta.edge_fields.indexOf('type');
    const edgeNameAt = meta.edge_fields.indexOf('name_or_index');
    const toAt = meta.edge_fields.indexOf('to_node');
    let edge = 0;
    for (let i = 0; i < json.nodes.length; i += width) {
      const count = json.nodes[i + edgeCountAt] ?? 0;
      for (let e = 0; e < count; e++, edge += edgeWidth) {
        const edgeType = edgeTypes[json.edges[edge + edgeTypeAt] ?? 0] ?? '?';
        if (edgeType === 'weak' || edgeType === 'shortcut') continue;
        const to = json.edges[edge + toAt] ?? 0;
        if (owner.has(to)) continue;
        const raw = json.edges[edge + edgeNameAt] ?? 0;
        const edgeName = edgeType === 'element' || edgeType === 'hidden' ? '[]' : (json.strings[raw] ?? '?');
        owner.set(to, { at: i, label: `${keyOf(i)}.${edgeName.slice(0, 30)}` });
      }
    }
  }
  const groups: Groups = new Map();
  for (let i = 0; i < json.nodes.length; i += width) {
    let key = keyOf(i);
    if (retainers) {
      let at = i;
      for (let level = 0; level < depth; level++) {
        const up = owner.get(at);
        key += ` <- ${up?.label ?? 'root'}`;
        if (!up) break;
        at = up.at;
      }
    }
    const group = groups.get(key) ?? { count: 0, bytes: 0 };
    group.count += 1;
    group.bytes += json.nodes[i + sizeAt] ?? 0;
    groups.set(key, group);
  }
  return groups;
}

/** Asks the server for a heap snapshot (SIGUSR2) and waits until the file is complete. */
async function snapshot(pid: number, dir: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + SNAPSHOT_DEADLINE_MS;
  let lastSize = -1;
  while (Date.now() < deadline) {
    await sleep(500);
    const file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (file === undefined) continue;
    const size = statSync(join(dir, file)).size;
    if (size > 0 && size === lastSize) {
      try {
        JSON.parse(readFileSync(join(dir, file), 'utf8'));
        return join(dir, file);
      } catch {
        // Still being written.
      }
    }
    lastSize = size;
  }
  throw new Error(`no complete heap snapshot within ${SNAPSHOT_DEADLINE_MS / 1000} s`);
}

async function main(): Promise<void> {
  installExitHandlers();
  const dir = mkdtempSync(join(tmpdir(), 'relais-heap-'));
  const flags = values['server-node-flags'].split(' ').filter((f) => f !== '');
  const options = {
    historySize: 100,
    redisUrl: '',
    serverNodeFlags: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`, ...flags],
    ...(values['relais-config'] !== undefined ? { relaisConfig: JSON.parse(values['relais-config']) as Record<string, unknown> } : {}),
  };
  const target = values.workers ? await startRelais(1, options, undefined, 'relais-workers', ['--workers', '1']) : await startRelais(1, options);
  let group: SubscriberGroup | null = null;
  try {
    const server = target.servers[0];
    // The server's processes, the primary first when it has workers (they are its children).
    const servers = withDescendants(server?.pid ?? 0).filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('main.js');
      } catch {
        return false;
      }
    });
    const pid = values.workers && values.process === 'worker' ? servers[1] : servers[0];
    if (pid === undefined) throw new Error('server process not found');
    await sleep(1500);
    const emptyRss = rssBytes(pid);
    const empty = groupSnapshot(await snapshot(pid, dir), values.retainers);
    const started = await SubscriberGroup.start({
      endpoint: target.endpoint,
      connections,
      rooms: connections,
      processes: Math.max(2, Math.ceil(connections / 15_000)),
      localAddresses: sourceAddresses(connections, 10_000),
      perAddress: 10_000,
      concurrency: 100,
      connectTimeoutMs: 60_000 + connections * 3,
    });
    group = started.group;
    const ok = started.outcome.ok;
    if (ok === 0) throw new Error(`no connection: ${started.outcome.firstError}`);
    await sleep(3000);
    const loadedRss = rssBytes(pid);
    const loaded = groupSnapshot(await snapshot(pid, dir), values.retainers);
    const rows = [...new Set([...empty.keys(), ...loaded.keys()])].map((key) => {
      const a = empty.get(key) ?? { count: 0, bytes: 0 };
      const b = loaded.get(key) ?? { count: 0, bytes: 0 };
      return { key, perConnCount: (b.count - a.count) / ok, perConnBytes: (b.bytes - a.bytes) / ok };
    });
    rows.sort((x, y) => y.perConnBytes - x.perConnBytes);
    const total = (g: Groups): number => [...g.values()].reduce((n, v) => n + v.bytes, 0);
    const heapPerConn = (total(loaded) - total(empty)) / ok;
    const rssPerConn = emptyRss !== null && loadedRss !== null ? (loadedRss - emptyRss) / ok : null;
    console.log(`${ok} idle subscribed connections (${started.outcome.failed} failed); server flags: ${flags.join(' ') || 'none'}`);
    console.log(`live heap: ${(total(empty) / 1048576).toFixed(1)} MB empty, ${(total(loaded) / 1048576).toFixed(1)} MB loaded: ${heapPerConn.toFixed(0)} bytes per connection`);
    if (rssPerConn !== null && emptyRss !== null && loadedRss !== null) {
      console.log(`RSS: ${(emptyRss / 1048576).toFixed(1)} MB empty, ${(loadedRss / 1048576).toFixed(1)} MB loaded: ${(rssPerConn / 1024).toFixed(2)} KB per connection`);
    }
    console.log('\n| group | objects per connection | bytes per connection |\n| --- | ---: | ---: |');
    for (const row of rows.slice(0, top)) console.log(`| ${row.key} | ${row.perConnCount.toFixed(2)} | ${row.perConnBytes.toFixed(0)} |`);
  } finally {
    await group?.stop();
    await target.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
