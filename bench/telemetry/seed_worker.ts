/**
 * Seed 003 case 2's aggregation worker, as its code does it: mqtt.js subscribed to
 * `devices/+/metrics`, an array of raw values per device and sensor, every window the
 * reduce / Math.min(...values) / Math.max(...values), one `redis.publish` of every aggregate
 * and one awaited `SETEX` per aggregate. Env: REDIS_URL, MQTT_BROKER_URL, TOPIC_ROOT (prefix
 * of the topic, so that runs do not see each other), KEY_PREFIX (of Redis names), WINDOW_MS.
 */
import { Redis } from 'ioredis';
import mqtt from 'mqtt';

interface RawMetric {
  deviceId: string;
  sensorType: 'temperature' | 'vibration' | 'pressure';
  value: number;
  timestamp: number;
}

interface AggregatedMetric {
  deviceId: string;
  sensorType: string;
  avg: number;
  min: number;
  max: number;
  count: number;
  windowStart: number;
  windowEnd: number;
}

const root = process.env['TOPIC_ROOT'] ?? '';
const prefix = process.env['KEY_PREFIX'] ?? '';
const windowMs = Number(process.env['WINDOW_MS'] ?? 5000);
const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379');
const mqttClient = mqtt.connect(process.env['MQTT_BROKER_URL'] ?? 'mqtt://127.0.0.1:1883');

const windows = new Map<string, { values: number[]; sensorType: string }>();

mqttClient.subscribe(`${root}devices/+/metrics`);

mqttClient.on('message', (_topic: string, payload: Buffer) => {
  const metric = JSON.parse(payload.toString()) as RawMetric;
  const key = `${metric.deviceId}:${metric.sensorType}`;
  if (!windows.has(key)) {
    windows.set(key, { values: [], sensorType: metric.sensorType });
  }
  windows.get(key)?.values.push(metric.value);
});

setInterval(() => {
  void (async () => {
    const aggregated: AggregatedMetric[] = [];
    const now = Date.now();
    for (const [key, window] of windows) {
      if (window.values.length === 0) continue;
      const [deviceId = '', sensorType = ''] = key.split(':');
      const values = window.values;
      const avg = values.reduce((s, v) => s + v, 0) / values.length;
      const min = Math.min(...values);
      const max = Math.max(...values);
      aggregated.push({ deviceId, sensorType, avg: Math.round(avg * 100) / 100, min, max, count: values.length, windowStart: now - windowMs, windowEnd: now });
      window.values = [];
    }
    if (aggregated.length > 0) {
      await redis.publish(`${prefix}metrics:aggregated`, JSON.stringify(aggregated));
      for (const metric of aggregated) {
        await redis.setex(`${prefix}device:${metric.deviceId}:latest:${metric.sensorType}`, 60, JSON.stringify(metric));
      }
    }
  })();
}, windowMs);

process.on('SIGTERM', () => {
  mqttClient.end(true);
  redis.disconnect();
  process.exit(0);
});
