import { AckPolicy, createInbox, DeliverPolicy, nanos, type JetStreamManager, type Msg, type MsgHdrs, type NatsConnection } from 'nats';

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

/** Consumers left behind by a dead reader go away on their own after this, ms. */
const INACTIVE_THRESHOLD_MS = 10_000;

/**
 * Reads the messages a subject filter holds right now, in stream order.
 *
 * JetStream on nats-server 2.9 has no batch get (that came with 2.11), and a pull fetch
 * cannot end early without `no_wait` in the new nats.js consumer API. So this creates an
 * ephemeral push consumer (ack none, in memory) delivering to a private inbox. Each
 * delivery says how many messages were still pending for the consumer; the read ends with
 * the one that says none (or at once when the create response says nothing matches), so it
 * covers every subject even while some are rewritten, with no idle wait. Last-per-subject
 * reads keep the newest message of a subject delivered twice. Two round trips plus the
 * transfer; the consumer is deleted afterwards (and expires by itself if that fails).
 */
export async function readSubject(nc: NatsConnection, jsm: JetStreamManager, options: ReadSubjectOptions): Promise<SubjectMessage[]> {
  const inbox = createInbox();
  const received: Msg[] = [];
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
      // Caught up with the stream: nothing left to deliver when this message was sent. (A
      // count fixed at creation would end too early when a subject is rewritten meanwhile:
      // the rewrite arrives as one more message and another subject goes unread.)
      if (pendingOf(msg.reply) === 0) settle?.resolve();
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
    // The create response is the consumer's state before its first delivery: nothing to wait for.
    if (info.num_pending + info.delivered.consumer_seq === 0) settle?.resolve();
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
