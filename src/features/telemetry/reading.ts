/**
 * One device reading as it enters Relais (MQTT payload or an item of a `telemetry_ingest`
 * batch), and the rules that accept, clamp or refuse it (docs/telemetry.md, docs/errors.md).
 */

/** A reading accepted for aggregation; `timestamp` is Unix ms, already clamped. */
export interface Reading {
  readonly deviceId: string;
  readonly sensorType: string;
  readonly value: number;
  readonly timestamp: number;
}

/**
 * Why a reading was refused; each is counted in `relais_telemetry_rejected_total{reason}`
 * and documented in docs/errors.md.
 */
export type RejectReason =
  | 'MALFORMED_JSON'
  | 'INVALID_READING'
  | 'UNKNOWN_SENSOR'
  | 'INVALID_VALUE'
  | 'TIMESTAMP_FUTURE'
  | 'TIMESTAMP_LATE'
  | 'DEVICE_MISMATCH'
  | 'DEVICE_RATE_LIMITED'
  | 'TOO_MANY_SERIES';

export const REJECT_REASONS: readonly RejectReason[] = [
  'MALFORMED_JSON',
  'INVALID_READING',
  'UNKNOWN_SENSOR',
  'INVALID_VALUE',
  'TIMESTAMP_FUTURE',
  'TIMESTAMP_LATE',
  'DEVICE_MISMATCH',
  'DEVICE_RATE_LIMITED',
  'TOO_MANY_SERIES',
];

export interface ReadingRules {
  readonly sensorTypes: ReadonlySet<string>;
  /** Readings up to this many ms ahead of `now` are clamped to `now`; further ahead refused. */
  readonly maxFutureSkewMs: number;
  /** Largest absolute value accepted. */
  readonly valueLimit: number;
}

export type ParsedReading =
  | { readonly ok: true; readonly reading: Reading; readonly clamped: boolean }
  | { readonly ok: false; readonly reason: RejectReason };

/** Device ids: what an MQTT topic level and a channel-safe key can both hold. */
const DEVICE_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

function refuse(reason: RejectReason): ParsedReading {
  return { ok: false, reason };
}

/**
 * Checks a decoded reading. A missing timestamp is the arrival time `now`; timestamps are
 * Unix milliseconds. Past timestamps are accepted here: whether their window is still open
 * is the aggregator's call (TIMESTAMP_LATE).
 */
export function checkReading(input: unknown, rules: ReadingRules, now: number): ParsedReading {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return refuse('INVALID_READING');
  const { deviceId, sensorType, value, timestamp } = input as Record<string, unknown>;
  if (typeof deviceId !== 'string' || !DEVICE_ID.test(deviceId)) return refuse('INVALID_READING');
  if (typeof sensorType !== 'string') return refuse('INVALID_READING');
  if (!rules.sensorTypes.has(sensorType)) return refuse('UNKNOWN_SENSOR');
  // JSON has no NaN, but 1e999 parses to Infinity, and producers send "NaN" as a string.
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > rules.valueLimit) return refuse('INVALID_VALUE');
  let at = now;
  let clamped = false;
  if (timestamp !== undefined) {
    if (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || timestamp < 0) return refuse('INVALID_READING');
    if (timestamp > now + rules.maxFutureSkewMs) return refuse('TIMESTAMP_FUTURE');
    if (timestamp > now) clamped = true;
    else at = Math.floor(timestamp);
  }
  return { ok: true, reading: { deviceId, sensorType, value, timestamp: at }, clamped };
}

/** Decodes then checks an MQTT payload; `topicDevice` (the topic's `+` level) must match the payload's deviceId. */
export function parseReadingPayload(payload: Buffer | string, rules: ReadingRules, now: number, topicDevice?: string): ParsedReading {
  let input: unknown;
  try {
    input = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch {
    return refuse('MALFORMED_JSON');
  }
  const parsed = checkReading(input, rules, now);
  if (parsed.ok && topicDevice !== undefined && parsed.reading.deviceId !== topicDevice) return refuse('DEVICE_MISMATCH');
  return parsed;
}
