import type { HistoryResult } from '../brokers/broker.js';
import type { Publication, StreamPosition } from './publication.js';
import { joinBuffered, type RecoveryOutcome } from './recovery.js';

export interface LatestInput {
  /** The subscriber's position when it recovers (Centrifugo's `recover` with offset and epoch). */
  readonly since?: StreamPosition;
  /**
   * Replay what `since` missed when history holds all of it (an SSE resume, which must lose
   * nothing); otherwise, and always for WebSocket clients as Centrifugo does, the latest only.
   */
  readonly resume: boolean;
  /** The channel's newest publications, newest first, read after the subscriber joined the hub. */
  readonly history: HistoryResult;
  /** Publications that reached the subscriber while it buffered, in arrival order. */
  readonly buffered: readonly Publication[];
}

/**
 * A join in cache recovery mode (a latest-value channel): the subscriber gets the channel's
 * latest publication first, then what arrived while history was read, with no gap and no
 * duplicate. `recovered` follows Centrifugo: a recovering subscriber recovered when a latest
 * publication exists in the epoch it knew (or it knew none).
 */
export function mergeLatest(input: LatestInput): RecoveryOutcome {
  const top = input.history.position;
  const newestFirst = input.history.publications.filter((p) => p.epoch === top.epoch && p.offset <= top.offset);
  const since = input.since;
  const sameEpoch = since !== undefined && (since.epoch === '' || since.epoch === top.epoch);
  const publications: Publication[] = [];
  let recovered: boolean;
  const oldest = newestFirst[newestFirst.length - 1];
  if (input.resume && since && sameEpoch && since.offset <= top.offset && (since.offset === top.offset || (oldest !== undefined && oldest.offset <= since.offset + 1))) {
    for (let i = newestFirst.length - 1; i >= 0; i--) {
      const pub = newestFirst[i] as Publication;
      if (pub.offset > since.offset) publications.push(pub);
    }
    recovered = true;
  } else {
    const latest = newestFirst[0];
    if (latest) publications.push(latest);
    recovered = sameEpoch && latest !== undefined;
  }
  return joinBuffered(top, input.buffered, publications, recovered);
}
