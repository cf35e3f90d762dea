import { randomBytes } from 'node:crypto';
import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager, type PubAck, type StreamConfig } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import type { Publication, StreamPosition } from '../../core/publication.js';
import { decodeStoredEntry, encodeStoredEntry, publicationOf, type StoredEntry } from './codec.js';
import type { NatsNames } from './names.js';
import { readSubject } from './subject_reader.js';
import { isStreamNotFound } from './util.js';

/** The last message of a channel's history subject: the channel's position. */
export interface Top {
  /** Stream sequence, for `Nats-Expected-Last-Subject-Sequence`. */
  readonly seq: number;
  readonly entry: StoredEntry;
}

export interface HistoryStreamLimits {
  /** Stream-wide `max_msgs_per_subject`; -1 leaves trimming to the broker. */
  readonly maxMsgsPerSubject: number;
  /** Stream-wide `max_age`, ms: bounds every channel's history TTL and position lifetime. */
  readonly maxAgeMs: number;
  /** `duplicate_window` for `Nats-Msg-Id`, ms. */
  readonly duplicateWindowMs: number;
  readonly replicas: number;
}

export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

/**
 * A position whose meta TTL has passed is forgotten: the next publish starts a new lineage,
 * as the memory broker does when it sweeps an idle stream. 0 means no expiry of its own.
 */
export function isMetaExpired(entry: StoredEntry, now: number): boolean {
  return entry.metaTtl > 0 && entry.time + entry.metaTtl <= now;
}

export function positionOf(top: Top): StreamPosition {
  return { offset: top.entry.offset, epoch: top.entry.epoch };
}

/**
 * The publications a reader may see, oldest first: those of the top's epoch, within the
 * top's history size and their own TTL, not hidden by a removeHistory mark, and not past
 * the top (entries appended after the top was read belong to a later position).
 */
export function visiblePublications(entries: readonly StoredEntry[], top: StoredEntry, now: number): Publication[] {
  if (top.kind === 'mark') return [];
  const floor = top.offset - top.size;
  let out: Publication[] = [];
  for (const entry of entries) {
    if (entry.epoch !== top.epoch || entry.offset > top.offset) continue;
    if (entry.kind === 'mark') {
      out = out.filter((p) => p.offset > entry.offset);
      continue;
    }
    if (entry.offset <= floor || entry.time + entry.ttl <= now) continue;
    out.push(publicationOf(entry));
  }
  return out;
}

/**
 * The JetStream side of channel history: one stream (`<prefix>_HISTORY`), one subject per
 * channel, one message per entry. Offsets and epochs are ChannelHistory's business.
 */
export class JetStreamHistory {
  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly names: NatsNames,
    private readonly requestTimeoutMs: number,
  ) {}

  /** Creates the stream, or brings the limits this broker manages up to date. */
  async ensureStream(limits: HistoryStreamLimits): Promise<void> {
    const managed = {
      max_msgs_per_subject: limits.maxMsgsPerSubject,
      max_age: nanos(limits.maxAgeMs),
      duplicate_window: nanos(Math.min(limits.duplicateWindowMs, limits.maxAgeMs)),
      num_replicas: limits.replicas,
    };
    const config: Partial<StreamConfig> & { name: string } = {
      name: this.names.historyStream,
      subjects: [this.names.historySubjects],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      ...managed,
    };
    let current: StreamConfig;
    try {
      current = (await this.jsm.streams.info(this.names.historyStream)).config;
    } catch (err) {
      if (!isStreamNotFound(err)) throw err;
      try {
        await this.jsm.streams.add(config);
        return;
      } catch (addErr) {
        // Another node created it meanwhile: fall through to the comparison.
        try {
          current = (await this.jsm.streams.info(this.names.historyStream)).config;
        } catch {
          throw addErr;
        }
      }
    }
    const stale =
      current.max_msgs_per_subject !== managed.max_msgs_per_subject ||
      current.max_age !== managed.max_age ||
      current.duplicate_window !== managed.duplicate_window ||
      current.num_replicas !== managed.num_replicas;
    if (stale) await this.jsm.streams.update(this.names.historyStream, managed);
  }

  /** The channel's last history message; undefined when the subject holds none. */
  async readTop(channel: string): Promise<Top | undefined> {
    const msg = await this.jsm.streams.getMessage(this.names.historyStream, { last_by_subj: this.names.historySubject(channel) });
    return msg ? { seq: msg.seq, entry: decodeStoredEntry(msg.data) } : undefined;
  }

  /** The entry at a stream sequence, if still stored. */
  async readAt(seq: number): Promise<StoredEntry | undefined> {
    const msg = await this.jsm.streams.getMessage(this.names.historyStream, { seq });
    return msg ? decodeStoredEntry(msg.data) : undefined;
  }

  /**
   * Appends to the channel's subject only if its last message is still `expectedSeq`
   * (0: the subject is empty). Throws a wrong-last-sequence error when another writer was
   * first (see isWrongLastSequence). With `msgId`, a repeat within the duplicate window is
   * not stored: the ack says `duplicate` and carries the first message's sequence.
   */
  append(channel: string, expectedSeq: number, entry: StoredEntry, timeoutMs: number, msgId?: string): Promise<PubAck> {
    return this.js.publish(this.names.historySubject(channel), encodeStoredEntry(entry), {
      expect: { lastSubjectSequence: expectedSeq },
      timeout: Math.max(1, Math.min(timeoutMs, this.requestTimeoutMs)),
      ...(msgId !== undefined ? { msgID: msgId } : {}),
    });
  }

  /** Every entry the channel's subject holds, oldest first (skipping unreadable ones). */
  async readEntries(channel: string, onBadEntry: (err: unknown) => void): Promise<StoredEntry[]> {
    const msgs = await readSubject(this.nc, this.jsm, {
      stream: this.names.historyStream,
      filter: this.names.historySubject(channel),
      deliver: 'all',
      timeoutMs: this.requestTimeoutMs,
    });
    const entries: StoredEntry[] = [];
    for (const msg of msgs) {
      try {
        entries.push(decodeStoredEntry(msg.data));
      } catch (err) {
        onBadEntry(err);
      }
    }
    return entries;
  }

  /** Drops the channel's messages stored before `seq`. */
  async purgeBefore(channel: string, seq: number): Promise<void> {
    await this.jsm.streams.purge(this.names.historyStream, { filter: this.names.historySubject(channel), seq });
  }

  /** Keeps only the channel's `keep` newest messages. */
  async trim(channel: string, keep: number): Promise<void> {
    await this.jsm.streams.purge(this.names.historyStream, { filter: this.names.historySubject(channel), keep });
  }

  /** Channels with at least one stored message. */
  async channels(): Promise<string[]> {
    const info = await this.jsm.streams.info(this.names.historyStream, { subjects_filter: this.names.historySubjects });
    const out: string[] = [];
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const channel = this.names.channelOfHistorySubject(subject);
      if (channel !== undefined) out.push(channel);
    }
    return out;
  }
}
