import type { StreamPosition } from '../../core/publication.js';

/**
 * The SSE event id: the stream's position in every channel it carries, so that a
 * reconnecting EventSource (Last-Event-ID) resumes each of them, on any node.
 *
 * Format: `1;<time>;<channel>=<epoch>.<offset>,...` with channel and epoch
 * percent-encoded. `<time>` is the publication time (Unix ms) of the last event: channels
 * of a glob that are not listed had no event before it, so a resume replays theirs after it.
 */
export interface StreamCursor {
  readonly time: number;
  readonly positions: ReadonlyMap<string, StreamPosition>;
}

const VERSION = '1';
/** Longest Last-Event-ID read; anything longer is ignored (a fresh start). */
export const MAX_EVENT_ID_LENGTH = 16_384;

export function encodeEventId(time: number, positions: ReadonlyMap<string, StreamPosition>): string {
  const parts: string[] = [];
  for (const [channel, p] of positions) parts.push(`${encodeURIComponent(channel)}=${encodeURIComponent(p.epoch)}.${p.offset}`);
  return `${VERSION};${time};${parts.join(',')}`;
}

/** Parses a Last-Event-ID; undefined when absent or not ours (the stream then starts fresh). */
export function decodeEventId(id: string | undefined): StreamCursor | undefined {
  if (id === undefined || id === '' || id.length > MAX_EVENT_ID_LENGTH) return undefined;
  const [version, timeText, list, ...rest] = id.split(';');
  if (version !== VERSION || timeText === undefined || list === undefined || rest.length > 0) return undefined;
  const time = safeInteger(timeText);
  if (time === undefined) return undefined;
  const positions = new Map<string, StreamPosition>();
  if (list !== '') {
    for (const entry of list.split(',')) {
      // The epoch runs to the last '.': encodeURIComponent leaves dots in it, offsets have none.
      const match = /^([^=]+)=(.*)\.(\d{1,16})$/.exec(entry);
      const offset = safeInteger(match?.[3]);
      if (!match || offset === undefined) return undefined;
      try {
        positions.set(decodeURIComponent(match[1] ?? ''), { epoch: decodeURIComponent(match[2] ?? ''), offset });
      } catch {
        return undefined;
      }
    }
  }
  return { time, positions };
}

function safeInteger(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,16}$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}
