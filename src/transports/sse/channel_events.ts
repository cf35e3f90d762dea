import type { Publication } from '../../core/publication.js';

/**
 * How the publications of one namespace appear on SSE streams, for a feature that gives them
 * a meaning (job progress: `progress` events, then `complete`). Without one, a publication is
 * an unnamed event (EventSource's `message`).
 */
export interface SseChannelEvents {
  /** The event name of every publication of the namespace (`progress`). */
  readonly event: string;
  /** The event written after a final publication, with the same data (`complete`). */
  readonly finalEvent: string;
  /**
   * Whether a publication is its channel's last (a terminal job status): the final event
   * follows it, and a stream of that channel alone then ends. Must not throw.
   */
  isFinal(pub: Publication): boolean;
}

/** The data of an event: the publication envelope (channel, offset, epoch, data, time), or the publication's data alone. */
export type SseDataFormat = 'envelope' | 'data';
