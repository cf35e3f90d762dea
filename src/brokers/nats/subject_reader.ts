import { AckPolicy, DeliverPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { createInbox, nanos, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';

export interface ReadSubjectOptions {
  readonly stream: string;
  /** Subject filter (may hold wildcards). */
  readonly filter: string;
  /** 'all' reads every message in stream order; 'last_per_subject' one per subject (KV). */
  readonly deliver: 'all' | 'last_per_subject';
  readonly timeoutMs: number;
}

/** One stored message as a reader sees it. */
export interface SubjectMessage {
  readonly subject: string;
  /** Stream sequence (a KV entry's revision). */
  readonly seq: number;
  readonly data: Uint8Array;
  readonly headers: MsgHdrs | undefined;
}

/** Silence that ends a read which got everything it expected but no final pending of 0, ms. */
const QUIET_MS = 25;

/** Consumers left behind by a dead reader go away on their own after this, ms. */
const INACTIVE_THRESHOLD_MS = 10_000;

/**
 * Reads the messages a subject filter holds right now, in stream order.
 *
 * JetStream on nats-server 2.9 has no batch get (that came with 2.11), and a pull fetch
 * cannot end early without `no_wait` in the new nats.js consumer API. So this creates an
 * ephemeral push consumer (ack none, in memory) delivering to a private inbox. The read
 * ends once as many messages as matched at creation arrived and a delivery says nothing is
 * left pending, so it covers every subject even while some are rewritten, with no idle
 * wait. Last-per-subject reads keep the newest message of a subject delivered twice. Two round trips plus the
 * transfer; the consumer is deleted afterwards (and expires by itself if that fails).
 */
export async function readSubject(nc: NatsConnection, jsm: JetStreamManager, options: ReadSubjectOptions): Promise<SubjectMessage[]> {
  const inbox = createInbox();
  const received: Msg[] = [];
  // Done when at least what matched at creation arrived AND the consumer says nothing is
  // pending: the count alone ends too early when a subject is rewritten during the read
  // (the rewrite comes as one more message, and another subject goes unread), and the
  // pending count alone was seen at 0 before every subject had come.
  let expected: number | undefined;
  let lastPending = -1;
  const caughtUp = (): boolean => expected !== undefined && received.length >= expected && (expected === 0 || lastPending === 0);
  // Under heavy rewriting the server's pending count can stay above 0 (superseded messages
  // still counted): once enough arrived, a short quiet spell ends the read as well.
  let quiet: NodeJS.Timeout | undefined;
  const quietThenDone = (): void => {
    clearTimeout(quiet);
    quiet = setTimeout(() => settle?.resolve(), QUIET_MS);
  };
  let settle: { resolve: () => void; reject: (err: unknown) => void } | undefined;
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Marked handled at once: a timeout can fire while the consumer is still being created.
  done.catch(() => undefined);
  const sub = nc.subscribe(inbox, {
    callback: (err, msg) => {
      if (err) {
        settle?.reject(err);
        return;
      }
      // Status messages (heartbeats, flow control) are not configured; skip any anyway.
      if (msg.data.length === 0 && (msg.headers?.code ?? 0) > 0) return;
      received.push(msg);
      lastPending = pendingOf(msg.reply);
      if (caughtUp()) settle?.resolve();
      else if (expected !== undefined && received.length >= expected) quietThenDone();
    },
  });
  const timer = setTimeout(() => settle?.reject(new Error(`reading ${options.filter} timed out after ${options.timeoutMs} ms`)), options.timeoutMs);
  let consumer: string | undefined;
  try {
    const info = await jsm.consumers.add(options.stream, {
      deliver_subject: inbox,
      filter_subject: options.filter,
      ack_policy: AckPolicy.None,
      deliver_policy: options.deliver === 'all' ? DeliverPolicy.All : DeliverPolicy.LastPerSubject,
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(INACTIVE_THRESHOLD_MS),
    });
    consumer = info.name;
    // The create response is the consumer's state before its first delivery.
    expected = info.num_pending + info.delivered.consumer_seq;
    if (caughtUp()) settle?.resolve();
    await done;
    const messages = received.map((msg) => ({ subject: msg.subject, seq: streamSeqOf(msg.reply), data: msg.data, headers: msg.headers }));
    if (options.deliver === 'all') return messages;
    // Last per subject: a subject rewritten during the read came twice; its newest counts.
    const latest = new Map<string, SubjectMessage>();
    for (const message of messages) {
      const known = latest.get(message.subject);
      if (!known || message.seq > known.seq) latest.set(message.subject, message);
    }
    return [...latest.values()].sort((a, b) => a.seq - b.seq);
  } finally {
    clearTimeout(timer);
    clearTimeout(quiet);
    sub.unsubscribe();
    if (consumer !== undefined) jsm.consumers.delete(options.stream, consumer).catch(() => undefined);
  }
}

/** Messages still pending for the consumer after this delivery (token after the time). */
function pendingOf(reply: string | undefined): number {
  const tokens = (reply ?? '').split('.');
  const pending = Number(tokens[tokens.length === 9 ? 8 : 10]);
  return Number.isSafeInteger(pending) ? pending : -1;
}

/**
 * The stream sequence in a push delivery's reply subject:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>`,
 * or with `<domain>.<account hash>` after `$JS.ACK` (and a trailing token) on newer servers.
 */
function streamSeqOf(reply: string | undefined): number {
  const tokens = (reply ?? '').split('.');
  const index = tokens.length === 9 ? 5 : 7;
  const seq = Number(tokens[index]);
  return Number.isSafeInteger(seq) ? seq : 0;
}
