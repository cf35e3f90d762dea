/**
 * CPU of the subscribe replies of a reconnect storm, measured in one process (no server):
 * N clients recover the same K publications (the same objects, as from the node's memory),
 * encoded by Relais' JSON and Protobuf codecs, which share the encoded run between replies,
 * and, in the same run, by a plain protobufjs encoding of each whole Reply (what the Protobuf
 * codec did before it shared runs).
 * Usage: node --import tsx bench/protocol/storm_replies.ts [--clients 1000] [--publications 125] [--rounds 20]
 */
import { parseArgs } from 'node:util';
import protobuf from 'protobufjs';
import { jsonCodec } from '../../src/protocol/json_codec.js';
import { protobufCodec } from '../../src/protocol/protobuf_codec.js';
import { CLIENT_PROTO } from '../../src/protocol/protobuf_schema.js';
import type { WirePublication } from '../../src/protocol/types.js';

const { values } = parseArgs({ options: { clients: { type: 'string', default: '1000' }, publications: { type: 'string', default: '125' }, rounds: { type: 'string', default: '20' } } });
const clients = Number(values.clients);
const count = Number(values.publications);
const rounds = Number(values.rounds);

const Reply = protobuf.parse(CLIENT_PROTO, { keepCase: true }).root.lookupType('centrifugal.centrifuge.protocol.Reply');
const utf8 = new TextEncoder();

/** A storm's worth of publications: fresh objects each round, so that no cache outlives a round. */
function publications(round: number): WirePublication[] {
  return Array.from({ length: count }, (_, i) => ({
    data: JSON.stringify({ round, seq: i, text: 'a chat message of ordinary length, about a line', at: 1764900000000 + i }),
    offset: i + 1,
    info: { user: `user-${i % 50}`, client: `0b0c7c3e-7a5e-4f2e-9a43-${String(i).padStart(12, '0')}` },
  }));
}

/** Each publication's message built once per publication object, as the codec did before. */
const messages = new WeakMap<WirePublication, Record<string, unknown>>();
function message(p: WirePublication): Record<string, unknown> {
  let out = messages.get(p);
  if (!out) {
    out = { data: utf8.encode(p.data), offset: p.offset, info: p.info };
    messages.set(p, out);
  }
  return out;
}

function plainProtobuf(id: number, pubs: readonly WirePublication[]): Uint8Array {
  return Reply.encodeDelimited({ id, subscribe: { recovered: true, epoch: 'xyz', offset: count, publications: pubs.map(message) } }).finish();
}

const encoders: Record<string, (id: number, pubs: WirePublication[]) => unknown> = {
  'json (shared run)': (id, pubs) => jsonCodec.encodeReply(id, { method: 'subscribe', result: { recovered: true, epoch: 'xyz', offset: count, publications: pubs } }),
  'protobuf (shared run)': (id, pubs) => protobufCodec.encodeReply(id, { method: 'subscribe', result: { recovered: true, epoch: 'xyz', offset: count, publications: pubs } }),
  'protobuf (whole reply per client)': plainProtobuf,
};

process.stdout.write(`${clients} subscribe replies of ${count} publications each, median of ${rounds} rounds\n\n| encoder | ms per ${clients} replies | bytes per reply |\n| --- | --- | --- |\n`);
for (const [name, encode] of Object.entries(encoders)) {
  const times: number[] = [];
  let size = 0;
  for (let round = 0; round < rounds + 2; round++) {
    const pubs = publications(round);
    const start = process.hrtime.bigint();
    for (let c = 1; c <= clients; c++) {
      const out = encode(c, pubs);
      size = typeof out === 'string' ? Buffer.byteLength(out) : (out as Uint8Array).length;
    }
    if (round >= 2) times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  times.sort((a, b) => a - b);
  process.stdout.write(`| ${name} | ${(times[Math.floor(times.length / 2)] ?? 0).toFixed(1)} | ${size} |\n`);
}
