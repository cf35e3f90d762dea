import { createDelta } from 'fossil-delta';
import type { Publication } from './publication.js';

/** The delta types a namespace may allow (`allowed_delta_types`) and a client may ask for. */
export const DELTA_TYPES = ['fossil'] as const;
export type DeltaType = (typeof DELTA_TYPES)[number];

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

interface Patch {
  readonly base: Publication;
  readonly patch: Uint8Array | undefined;
}

const patches = new WeakMap<Publication, Patch>();

/**
 * The fossil delta turning `base`'s data into `pub`'s, computed once per publication on a
 * node (every subscriber and every protocol shares it). Undefined when a delta does not
 * pay (not smaller than the document) or is not valid UTF-8: the JSON protocol carries a
 * delta as a JSON string, and a delta cutting a multi-byte character could not survive
 * that. The subscriber then gets the whole document, which restarts its chain.
 */
export function fossilPatch(base: Publication, pub: Publication): Uint8Array | undefined {
  const known = patches.get(pub);
  if (known && known.base === base) return known.patch;
  const target = utf8.encode(pub.data);
  let patch: Uint8Array | undefined = createDelta(utf8.encode(base.data), target);
  if (patch.length >= target.length || !isUtf8(patch)) patch = undefined;
  patches.set(pub, { base, patch });
  return patch;
}

function isUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
