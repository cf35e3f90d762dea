/**
 * Telemetry test scaffolding: real MQTT publishers (the `mqtt` npm client), dashboards read
 * byte for byte over SSE, and the reference aggregates a test computes from what it sent.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { withTimeout, type RelaisProcess } from './relais.js';
import { RawSseStream } from './sse.js';
import type { WindowAggregate } from '../../src/features/telemetry/aggregate.js';

export const MOSQUITTO_URL = 'mqtt://127.0.0.1:1883';

export interface SentReading {
  readonly deviceId: string;
  readonly sensorType: string;
  readonly value: number;
  readonly timestamp: number;
}

/** An aggregate as dashboards receive it. */
export type Aggregate = WindowAggregate;

export function seriesKey(a: { windowStart: number; deviceId: string; sensorType: string }): string {
  return `${a.windowStart}|${a.deviceId}|${a.sensorType}`;
}

/** The aggregates of `readings` in windows of `windowMs`, computed from the raw values. */
export function referenceAggregates(readings: readonly SentReading[], windowMs: number): Map<string, Aggregate> {
  const groups = new Map<string, SentReading[]>();
  for (const r of readings) {
    const windowStart = Math.floor(r.timestamp / windowMs) * windowMs;
    const key = seriesKey({ windowStart, deviceId: r.deviceId, sensorType: r.sensorType });
    const group = groups.get(key);
    if (group) group.push(r);
    else groups.set(key, [r]);
  }
  const out = new Map<string, Aggregate>();
  for (const [key, group] of groups) {
    const first = group[0] as SentReading;
    const windowStart = Math.floor(first.timestamp / windowMs) * windowMs;
    const values = group.map((r) => r.value);
    out.set(key, {
      deviceId: first.deviceId,
      sensorType: first.sensorType,
      avg: values.reduce((s, v) => s + v, 0) / values.length,
      min: values.reduce((m, v) => Math.min(m, v), Infinity),
      max: values.reduce((m, v) => Math.max(m, v), -Infinity),
      count: values.length,
      windowStart,
      windowEnd: windowStart + windowMs,
    });
  }
  return out;
}

export async function mqttConnect(url: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000 });
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    }),
    6000,
    `no MQTT connection to ${url}`,
  );
  return client;
}

/** Whether an MQTT broker answers at `url` within two seconds. */
export async function mqttAvailable(url: string): Promise<boolean> {
  try {
    const client = await mqttConnect(url);
    await client.endAsync();
    return true;
  } catch {
    return false;
  }
}

/** A dashboard: the SSE stream of `/telemetry/stream` with its events parsed. */
export class Dashboard {
  private constructor(readonly stream: RawSseStream) {}

  static async open(relais: RelaisProcess, query: string, user = 'ops'): Promise<Dashboard> {
    const token = await relais.token(user);
    const stream = await RawSseStream.open(`${relais.httpUrl}/telemetry/stream${query}`, { authorization: `Bearer ${token}` });
    const dashboard = new Dashboard(stream);
    await stream.waitFor((s) => s.events.some((e) => e.type === 'SNAPSHOT'), 10_000, 'SNAPSHOT event');
    return dashboard;
  }

  snapshot(): Aggregate[] {
    const event = this.stream.events.find((e) => e.type === 'SNAPSHOT');
    return event ? (JSON.parse(event.data) as Aggregate[]) : [];
  }

  /** Every aggregate of every METRICS_UPDATE, in arrival order. */
  updates(): Aggregate[] {
    return this.stream.events.filter((e) => e.type === 'METRICS_UPDATE').flatMap((e) => JSON.parse(e.data) as Aggregate[]);
  }

  /** Readings counted in updates, for the devices `include` accepts. */
  counted(include: (deviceId: string) => boolean = () => true): number {
    return this.updates().reduce((n, a) => (include(a.deviceId) ? n + a.count : n), 0);
  }

  close(): Promise<void> {
    return this.stream.close();
  }
}
