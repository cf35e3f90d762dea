/**
 * The one door of readings into this instance's windows, whatever carried them (MQTT,
 * the server API): checks, per-device rate limit, aggregation, counters. Never throws on
 * a reading: a bad one is refused and counted, and the windows never see it.
 */
import { KeyedBuckets, type RateLimit } from '../../core/rate_limit.js';
import { checkReading, parseReadingPayload, type ParsedReading, type ReadingRules, type RejectReason } from './reading.js';
import type { ReadingSource, TelemetryStats } from './stats.js';
import type { WindowAggregator } from './window_aggregator.js';

export class TelemetryIngest {
  private readonly devices: KeyedBuckets;

  constructor(
    private readonly rules: ReadingRules,
    private readonly windows: WindowAggregator,
    deviceLimit: RateLimit,
    private readonly stats: TelemetryStats,
  ) {
    this.devices = new KeyedBuckets(deviceLimit);
  }

  /** An MQTT payload; `topicDevice` is the device id its topic names, when the topic filter has one. */
  payload(payload: Buffer, topicDevice: string | undefined): RejectReason | undefined {
    const now = Date.now();
    return this.admit(parseReadingPayload(payload, this.rules, now, topicDevice), 'mqtt', now);
  }

  /** A decoded reading (an item of a `telemetry_ingest` batch). */
  reading(input: unknown): RejectReason | undefined {
    const now = Date.now();
    return this.admit(checkReading(input, this.rules, now), 'http', now);
  }

  private admit(parsed: ParsedReading, source: ReadingSource, now: number): RejectReason | undefined {
    if (!parsed.ok) return this.refuse(parsed.reason);
    if (!this.devices.take(parsed.reading.deviceId, now)) return this.refuse('DEVICE_RATE_LIMITED');
    const outcome = this.windows.add(parsed.reading);
    if (outcome !== 'ok') return this.refuse(outcome);
    if (parsed.clamped) this.stats.clamped++;
    this.stats.accept(source);
    return undefined;
  }

  private refuse(reason: RejectReason): RejectReason {
    this.stats.reject(reason);
    return reason;
  }
}
