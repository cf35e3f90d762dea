/**
 * The `centrifuge` SDK releases the tests run against: the newest, and older 5.x releases
 * still deployed in browsers (installed beside it under npm aliases). Relais must serve all
 * of them; 5.0.0-5.7.4 dispatch incoming frames differently from 5.8 (see docs/protocol.md).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Centrifuge as Newest } from 'centrifuge';
import { Centrifuge as NewestProtobuf } from 'centrifuge/build/protobuf';
import { Centrifuge as Sdk57 } from 'centrifuge-5-7';
import { Centrifuge as Sdk50 } from 'centrifuge-5-0';

/** The client class, typed as the newest release's (the older ones are called the same way). */
export type CentrifugeClass = typeof Newest;

export interface SdkRelease {
  /** The version installed, read from its package.json. */
  readonly version: string;
  readonly Centrifuge: CentrifugeClass;
  /** The protocol the build speaks: the Protobuf build carries payloads as bytes. */
  readonly protocol: 'json' | 'protobuf';
  /** A value as this build publishes it (the bytes of its JSON under Protobuf). */
  encode(value: unknown): unknown;
  /** A payload this build received, as the JSON value it carries. */
  decode(data: unknown): unknown;
}

const asIs = (value: unknown): unknown => value;
const toJsonBytes = (value: unknown): unknown => new TextEncoder().encode(JSON.stringify(value));
const fromJsonBytes = (data: unknown): unknown => (data instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(data)) : data);

const require = createRequire(import.meta.url);

function release(packageName: string, Centrifuge: unknown, protocol: 'json' | 'protobuf' = 'json'): SdkRelease {
  // The package's exports hide its package.json: it sits one folder above the build.
  const manifest = JSON.parse(readFileSync(join(dirname(require.resolve(packageName)), '..', 'package.json'), 'utf8')) as { version: string };
  return {
    version: manifest.version,
    Centrifuge: Centrifuge as CentrifugeClass,
    protocol,
    encode: protocol === 'protobuf' ? toJsonBytes : asIs,
    decode: protocol === 'protobuf' ? fromJsonBytes : asIs,
  };
}

export const NEWEST_SDK = release('centrifuge', Newest);
/** The newest release's Protobuf build (`centrifuge/build/protobuf`), as the Dart, Swift and Java SDKs speak. */
export const NEWEST_PROTOBUF_SDK = release('centrifuge', NewestProtobuf, 'protobuf');
/** The last release before the frame dispatch fix. */
export const SDK_5_7 = release('centrifuge-5-7', Sdk57);
/** The oldest 5.x release. */
export const SDK_5_0 = release('centrifuge-5-0', Sdk50);

/** Newest first, then the oldest release we support, then the last one before the dispatch fix. */
export const SDK_MATRIX: readonly SdkRelease[] = [NEWEST_SDK, SDK_5_0, SDK_5_7];
