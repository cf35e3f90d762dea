import type { HistoryResult } from '../brokers/broker.js';
import type { Publication, StreamPosition } from './publication.js';

export interface RecoveryInput {
  /** The subscriber asked to recover from `since`. */
  readonly recover: boolean;
  readonly since?: StreamPosition;
  /** Beyond this many missed publications recovery fails (and replays nothing). */
  readonly maxPublications: number;
  /** History read after the subscriber joined the hub: since `since` with limit max+1, or limit 0. */
  readonly history: HistoryResult;
  /** Publications that reached the subscriber while it buffered, in arrival order. */
  readonly buffered: readonly Publication[];
  /**
   * A subscriber that does not recover gets these first (the channel's latest, read with the
   * history, oldest first): history_on_join.
   */
  readonly latest?: readonly Publication[];
}

export type RecoveryOutcome =
  | {
      readonly ok: true;
      readonly recovered: boolean;
      /** Position after the returned publications. */
      readonly position: StreamPosition;
      /** What the subscriber receives, in offset order: missed ones (when recovered) then buffered ones after the history top. */
      readonly publications: Publication[];
    }
  /** The live stream and history do not join up (bus gap, epoch change): retry the subscribe. */
  | { readonly ok: false; readonly reason: string };

/**
 * Joins a history read and the publications buffered while it ran, so that the
 * subscriber gets every publication after its position exactly once, in order — or,
 * when history cannot serve the position, none of the missed ones (never a partial replay).
 */
export function mergeRecovery(input: RecoveryInput): RecoveryOutcome {
  const top = input.history.position;
  let recovered = false;
  const publications: Publication[] = [];
  if (input.recover && input.since) {
    const since = input.since;
    const sameEpoch = since.epoch === '' || since.epoch === top.epoch;
    if (sameEpoch && since.offset === top.offset) {
      recovered = true;
    } else if (sameEpoch && since.offset < top.offset) {
      const missed = input.history.publications;
      const first = missed[0];
      const last = missed[missed.length - 1];
      const contiguous =
        first !== undefined &&
        last !== undefined &&
        first.offset === since.offset + 1 &&
        last.offset === top.offset &&
        missed.length === top.offset - since.offset;
      if (contiguous && missed.length <= input.maxPublications) {
        recovered = true;
        publications.push(...missed);
      }
    }
  }
  if (!input.recover && input.latest) {
    for (const pub of input.latest) if (pub.epoch === top.epoch && pub.offset <= top.offset) publications.push(pub);
  }
  return joinBuffered(top, input.buffered, publications, recovered);
}

/**
 * Appends to `publications` (what history gave, up to `top`) the buffered ones after `top`:
 * they must continue it in its epoch, with no gap, or the subscribe is retried.
 */
export function joinBuffered(top: StreamPosition, buffered: readonly Publication[], publications: Publication[], recovered: boolean): RecoveryOutcome {
  let offset = top.offset;
  for (const pub of buffered) {
    if (pub.epoch !== top.epoch) return { ok: false, reason: 'stream epoch changed during subscribe' };
    if (pub.offset <= offset) continue;
    if (pub.offset !== offset + 1) return { ok: false, reason: 'publications missing between history and live stream' };
    publications.push(pub);
    offset = pub.offset;
  }
  return { ok: true, recovered, position: { offset, epoch: top.epoch }, publications };
}
