import type { JsonText } from './json.js';

/** Position in a channel's stream: the offset of its last publication and the history lineage. */
export interface StreamPosition {
  /** Offset of the last publication; 0 for a stream with none yet. */
  readonly offset: number;
  /**
   * Names one history lineage. It changes when history is lost (memory restart, Redis flush),
   * so that a client can tell "nothing missed" from "history gone".
   */
  readonly epoch: string;
}

/** Who a connection is, as presence entries, join/leave events and publications carry it. */
export interface ClientInfo {
  readonly user: string;
  readonly client: string;
  /** Connection info from the token's `info` claim. */
  readonly connInfo?: JsonText;
  /** Channel info from a subscription token's `info` claim. */
  readonly chanInfo?: JsonText;
}

/** One message published to a channel. */
export interface Publication {
  /** Per-channel, contiguous from 1; 0 for channels that keep no history. */
  readonly offset: number;
  /** Epoch of the stream the offset belongs to ('' for channels that keep no history). */
  readonly epoch: string;
  readonly data: JsonText;
  /** Publisher, when a client published: always taken from its authenticated connection. */
  readonly info?: ClientInfo;
  readonly tags?: Readonly<Record<string, string>>;
  /** Publication time, Unix milliseconds. */
  readonly time: number;
  /**
   * The connection that must not receive it live (its publisher, with `exclude_client` or
   * `publish_to_others`). Node-local: never written to the wire; it travels over the bus and
   * in history as the tag EXCLUDE_CLIENT_TAG, which `withExclusion` takes off.
   */
  readonly excludeClient?: string;
}

/** The tag carrying `excludeClient` through the bus and history; no client ever sees it. */
export const EXCLUDE_CLIENT_TAG = 'relais_exclude_client';

/**
 * The publication as subscribers and history readers get it: the exclusion tag, when there is
 * one, taken off into `excludeClient`. The same object when there is none (the common case).
 */
export function withExclusion(pub: Publication): Publication {
  const excluded = pub.tags?.[EXCLUDE_CLIENT_TAG];
  if (excluded === undefined) return pub;
  const { [EXCLUDE_CLIENT_TAG]: _taken, ...rest } = pub.tags ?? {};
  const { tags: _tags, ...fields } = pub;
  return { ...fields, ...(Object.keys(rest).length > 0 ? { tags: rest } : {}), excludeClient: excluded };
}
