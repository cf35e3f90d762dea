/**
 * Wire-format figures of the client protocol, measured in one process (no server):
 *  1. Protobuf libraries: encode and decode of a Publication push (a Reply holding a Push)
 *     with protobufjs (what Relais uses) and @bufbuild/protobuf, from the same schema.
 *  2. Bytes per publication of a ~2 KB JSON document changing by a few fields, over the JSON
 *     and Protobuf protocols, whole and as fossil deltas, as Relais' codecs write them.
 * Usage: node --import tsx bench/protocol/codecs.ts
 */
import { create, createFileRegistry, fromBinary, toBinary, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor/index.js';
import { fossilPatch } from '../../src/core/delta.js';
import type { Publication } from '../../src/core/publication.js';
import type { JsonText } from '../../src/core/json.js';
import { jsonCodec } from '../../src/protocol/json_codec.js';
import { protobufCodec } from '../../src/protocol/protobuf_codec.js';
import { CLIENT_PROTO } from '../../src/protocol/protobuf_schema.js';

const ITERATIONS = 200_000;
const utf8 = new TextEncoder();

function timeNs(label: string, run: () => void): number {
  for (let i = 0; i < 20_000; i++) run();
  const start = process.hrtime.bigint();
  for (let i = 0; i < ITERATIONS; i++) run();
  const ns = Number(process.hrtime.bigint() - start) / ITERATIONS;
  process.stdout.write(`| ${label} | ${ns.toFixed(0)} |\n`);
  return ns;
}

// --- 1. protobufjs against @bufbuild/protobuf -------------------------------
const root = protobuf.parse(CLIENT_PROTO, { keepCase: true }).root.resolveAll();
const ReplyJs = root.lookupType('centrifugal.centrifuge.protocol.Reply');
// The same schema for @bufbuild/protobuf, through a FileDescriptorSet (no protoc needed).
const descriptorSet = (root as unknown as { toDescriptor(syntax: string): protobuf.Message }).toDescriptor('proto3');
const SetType = (descriptor as unknown as { FileDescriptorSet: protobuf.Type }).FileDescriptorSet;
interface MessageDescriptor {
  name: string;
  field?: { typeName?: string }[];
  nestedType?: MessageDescriptor[];
}
// protobufjs names field types relative to the package; @bufbuild/protobuf wants them fully qualified.
const set = SetType.toObject(descriptorSet) as { file: { package: string; messageType: MessageDescriptor[] }[] };
for (const file of set.file) {
  const topLevel = new Set(file.messageType.map((m) => m.name));
  const qualify = (message: MessageDescriptor, scope: string): void => {
    const nested = new Set((message.nestedType ?? []).map((n) => n.name));
    for (const field of message.field ?? []) {
      const name = field.typeName;
      if (name === undefined || name === '' || name.startsWith('.')) continue;
      field.typeName = nested.has(name) ? `${scope}.${message.name}.${name}` : topLevel.has(name) ? `.${file.package}.${name}` : name;
    }
    for (const n of message.nestedType ?? []) qualify(n, `${scope}.${message.name}`);
  };
  for (const message of file.messageType) qualify(message, `.${file.package}`);
}
const setBytes = SetType.encode(SetType.fromObject(set)).finish();
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, setBytes));
const ReplyEs = registry.getMessage('centrifugal.centrifuge.protocol.Reply') as DescMessage;

const data = utf8.encode(JSON.stringify({ s: 1, q: 42, ts: 1733356800000, p: 'x'.repeat(60) }));
const pushFields = { channel: 'bench:r0', pub: { data, offset: 42, info: { user: 'u1', client: '0f8e7c1a-bench' } } };

process.stdout.write(`\nPublication push (${data.length} bytes of data), ns per operation, ${ITERATIONS} iterations:\n\n| operation | ns |\n| --- | --- |\n`);
const jsBytes = ReplyJs.encode({ push: pushFields }).finish();
timeNs('protobufjs encode', () => ReplyJs.encode({ push: pushFields }).finish());
timeNs('protobufjs decode', () => ReplyJs.decode(jsBytes));
const esMessage = create(ReplyEs, { push: pushFields });
const esBytes = toBinary(ReplyEs, esMessage);
timeNs('@bufbuild/protobuf create + encode', () => toBinary(ReplyEs, create(ReplyEs, { push: pushFields })));
timeNs('@bufbuild/protobuf decode', () => fromBinary(ReplyEs, esBytes));
process.stdout.write(`\nsame bytes: ${Buffer.from(jsBytes).equals(Buffer.from(esBytes))} (${jsBytes.length} bytes)\n`);

// --- 2. bytes per publication, delta on and off -------------------------------
function documentVersion(version: number): JsonText {
  const lines = Array.from({ length: 24 }, (_, i) => ({ sku: `SKU-${1000 + i}`, label: `Article number ${i} of the catalogue`, qty: i === version % 24 ? version : i + 1, price: 10 + i }));
  return JSON.stringify({ id: 'book-1', version, status: version % 3 === 0 ? 'open' : 'pending', updatedBy: `user-${version % 5}`, lines }) as JsonText;
}

const VERSIONS = 100;
const pubs: Publication[] = Array.from({ length: VERSIONS }, (_, i) => ({ offset: i + 1, epoch: 'e', data: documentVersion(i + 1), time: 0 }));
const size = (m: string | Uint8Array): number => (typeof m === 'string' ? Buffer.byteLength(m) : m.byteLength);
const totals = { jsonFull: 0, jsonDelta: 0, protobufFull: 0, protobufDelta: 0 };
for (const [i, pub] of pubs.entries()) {
  const previous = pubs[i - 1];
  const patch = previous && fossilPatch(previous, pub);
  const channel = 'docs:book';
  totals.jsonFull += size(jsonCodec.encodePush({ type: 'pub', channel, pub, form: 'plain' }));
  totals.protobufFull += size(protobufCodec.encodePush({ type: 'pub', channel, pub, form: 'plain' }));
  totals.jsonDelta += size(patch ? jsonCodec.encodePush({ type: 'pub', channel, pub, form: 'delta', patch }) : jsonCodec.encodePush({ type: 'pub', channel, pub, form: 'full' }));
  totals.protobufDelta += size(patch ? protobufCodec.encodePush({ type: 'pub', channel, pub, form: 'delta', patch }) : protobufCodec.encodePush({ type: 'pub', channel, pub, form: 'full' }));
}
const per = (n: number): string => (n / VERSIONS).toFixed(0);
process.stdout.write(
  `\n${VERSIONS} versions of a ${Buffer.byteLength(pubs[0]?.data ?? '')}-byte document, bytes per publication push (WebSocket frame header excluded):\n\n` +
    `| protocol | whole | fossil delta | ratio |\n| --- | --- | --- | --- |\n` +
    `| JSON | ${per(totals.jsonFull)} | ${per(totals.jsonDelta)} | ${(totals.jsonFull / totals.jsonDelta).toFixed(1)}x |\n` +
    `| Protobuf | ${per(totals.protobufFull)} | ${per(totals.protobufDelta)} | ${(totals.protobufFull / totals.protobufDelta).toFixed(1)}x |\n`,
);
