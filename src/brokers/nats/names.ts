/**
 * Everything the NATS broker and presence manager create is named from one prefix, so that
 * several Relais clusters (or tests) share a NATS server without seeing each other.
 *
 * Subjects (core NATS unless noted):
 * - `<prefix>.pub.<token>`   fan-out of one channel: publications, joins, leaves
 * - `<prefix>.pub.*`         what a node with pattern subscriptions listens to: every channel
 * - `<prefix>.control`       control messages to every node
 * - `<prefix>.hist.<token>`  history of one channel, captured by the JetStream stream
 *                            `<prefix>_HISTORY`; never subscribed to with core NATS
 * JetStream KV buckets: `<prefix>_IDEMPOTENCY` (publish results by idempotency key),
 * `<prefix>_PRESENCE` (presence entries, keys `<token>.<client token>`), `<prefix>_OCCUPANCY`
 * (channel occupancy: `c.<token>`, `n.<node token>.<token>`, `r.<node token>`) and
 * `<prefix>_OCCUPANCY_ALIVE` (one key per live node, expiring).
 */

/** Prefixes are one subject token and part of stream names: no dots, wildcards or spaces. */
const PREFIX_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** Characters left as they are in a token: valid in NATS subjects and in KV keys alike. */
const SAFE_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-/') SAFE_BYTE[c.charCodeAt(0)] = 1;
const ESCAPE = '=';
const HEX = '0123456789ABCDEF';

/**
 * Encodes a channel name (or a client id) into ONE token that is valid both as a NATS
 * subject token and as a JetStream KV key token, reversibly.
 *
 * The escape is quoted-printable style: letters, digits, `_`, `-` and `/` stay as they are;
 * every other byte of the UTF-8 encoding becomes `=XX` (uppercase hex), `=` itself
 * included. So `chat:room.1` is `chat=3Aroom=2E1`. It was chosen over base64url because
 * subjects stay readable in `nats` CLI output and server monitoring, and because the result
 * never contains `.` (token separator), `*` or `>` (wildcards), spaces, or characters that
 * KV keys refuse (`:`, `@`, `,`, `#`, `+`, `~`). Decoding is exact since `=` is always escaped
 * (for well-formed Unicode; channel names are ASCII anyway).
 */
export function encodeToken(name: string): string {
  if (name === '') throw new Error('cannot encode an empty name as a subject token');
  const bytes = Buffer.from(name, 'utf8');
  let out = '';
  let plainFrom = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (SAFE_BYTE[b] === 1) continue;
    if (i > plainFrom) out += bytes.toString('latin1', plainFrom, i);
    out += ESCAPE + (HEX[b >> 4] ?? '0') + (HEX[b & 15] ?? '0');
    plainFrom = i + 1;
  }
  if (plainFrom === 0) return name;
  if (plainFrom < bytes.length) out += bytes.toString('latin1', plainFrom);
  return out;
}

/** Inverse of encodeToken; undefined for a token encodeToken cannot have produced. */
export function decodeToken(token: string): string | undefined {
  if (token === '') return undefined;
  if (!token.includes(ESCAPE)) return /^[A-Za-z0-9_/-]+$/.test(token) ? token : undefined;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const code = token.charCodeAt(i);
    if (token[i] === ESCAPE) {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (code < 256 && SAFE_BYTE[code] === 1) {
      bytes.push(code);
    } else {
      return undefined;
    }
  }
  const buf = Buffer.from(bytes);
  const text = buf.toString('utf8');
  // A byte sequence that is not UTF-8 would decode lossily: refuse it rather than alias.
  return Buffer.from(text, 'utf8').equals(buf) ? text : undefined;
}

/** The names one prefix owns. */
export interface NatsNames {
  readonly prefix: string;
  readonly controlSubject: string;
  readonly historyStream: string;
  /** Wildcard the history stream captures. */
  readonly historySubjects: string;
  readonly idempotencyBucket: string;
  readonly presenceBucket: string;
  readonly occupancyBucket: string;
  readonly occupancyAliveBucket: string;
  fanOutSubject(channel: string): string;
  /** Every channel's fan-out subject: a channel is one token, so no narrower wildcard matches a glob. */
  readonly fanOutWildcard: string;
  /** The channel a fan-out subject belongs to, or undefined for a foreign subject. */
  channelOfFanOutSubject(subject: string): string | undefined;
  historySubject(channel: string): string;
  /** The channel a history subject belongs to, or undefined for a foreign subject. */
  channelOfHistorySubject(subject: string): string | undefined;
}

export function natsNames(prefix: string): NatsNames {
  if (!PREFIX_RE.test(prefix)) {
    throw new Error(`NATS prefix "${prefix}" must be 1 to 64 characters among letters, digits, _ and -`);
  }
  const histPrefix = `${prefix}.hist.`;
  const pubPrefix = `${prefix}.pub.`;
  return {
    prefix,
    controlSubject: `${prefix}.control`,
    historyStream: `${prefix}_HISTORY`,
    historySubjects: `${prefix}.hist.>`,
    idempotencyBucket: `${prefix}_IDEMPOTENCY`,
    presenceBucket: `${prefix}_PRESENCE`,
    occupancyBucket: `${prefix}_OCCUPANCY`,
    occupancyAliveBucket: `${prefix}_OCCUPANCY_ALIVE`,
    fanOutSubject: (channel) => pubPrefix + encodeToken(channel),
    fanOutWildcard: `${pubPrefix}*`,
    channelOfFanOutSubject: (subject) => (subject.startsWith(pubPrefix) ? decodeToken(subject.slice(pubPrefix.length)) : undefined),
    historySubject: (channel) => histPrefix + encodeToken(channel),
    channelOfHistorySubject: (subject) => (subject.startsWith(histPrefix) ? decodeToken(subject.slice(histPrefix.length)) : undefined),
  };
}

/** Every JetStream stream a prefix may have created (KV buckets live in `KV_<bucket>`). */
export function natsStreamsOf(prefix: string): string[] {
  const names = natsNames(prefix);
  return [
    names.historyStream,
    `KV_${names.idempotencyBucket}`,
    `KV_${names.presenceBucket}`,
    `KV_${names.occupancyBucket}`,
    `KV_${names.occupancyAliveBucket}`,
  ];
}
