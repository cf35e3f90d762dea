/**
 * Telemetry end to end (seed 003 case 2, docs/telemetry.md): real Relais processes, real MQTT
 * clients publishing to the embedded broker and to the machine's Mosquitto, dashboards over
 * SSE. Aggregates are compared with a reference computed here from the raw values sent.
 */
import { randomUUID } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { busEnv, deletePrefix, freePort, SHARED_URL, sharedBusAvailable } from './helpers/buses.js';
import { sleep, waitFor } from './helpers/clients.js';
import { Resources } from './helpers/cluster.js';
import { sample, scrape } from './helpers/metrics.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';
import { Dashboard, MOSQUITTO_URL, mqttAvailable, mqttConnect, referenceAggregates, seriesKey, type Aggregate, type SentReading } from './helpers/telemetry.js';

const WINDOW_MS = 400;
const SENSORS = ['temperature', 'pressure'] as const;

/** Short windows, so that a test sees several close within a few seconds. */
function telemetryConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sse: { heartbeat_interval: '300ms' },
    telemetry: {
      enabled: true,
      window: '400ms',
      // Generous: on a busy machine a reading may wait in a socket; a refused one would not match the reference.
      allowed_lateness: '1500ms',
      merge_wait: '1500ms',
      device_rate_limit: { burst: 5000, per_second: 5000 },
      ...extra,
    },
  };
}

/** Publishes `perDevice` readings per device, alternating sensors, over about `spreadMs`; returns what was sent. */
async function publishReadings(client: MqttClient, topicOf: (device: string) => string, devices: readonly string[], perDevice: number, spreadMs: number): Promise<SentReading[]> {
  const sent: SentReading[] = [];
  const rounds = perDevice;
  const pause = spreadMs / rounds;
  for (let i = 0; i < rounds; i++) {
    for (const deviceId of devices) {
      const reading: SentReading = {
        deviceId,
        sensorType: SENSORS[i % SENSORS.length] as string,
        value: Math.round((Math.random() * 200 - 100) * 1000) / 1000 + i / 7,
        timestamp: Date.now(),
      };
      sent.push(reading);
      await client.publishAsync(topicOf(deviceId), JSON.stringify(reading), { qos: 1 });
    }
    await sleep(pause);
  }
  return sent;
}

/** Every published aggregate of `devices` equals the reference, each series once, and no reading is missing. */
function expectMatchesReference(updates: readonly Aggregate[], reference: Map<string, Aggregate>, devices: ReadonlySet<string>): void {
  const seen = new Map<string, Aggregate>();
  for (const aggregate of updates) {
    if (!devices.has(aggregate.deviceId)) continue;
    const key = seriesKey(aggregate);
    expect(seen.has(key), `series ${key} published twice`).toBe(false);
    seen.set(key, aggregate);
  }
  const expected = [...reference.values()].filter((a) => devices.has(a.deviceId));
  expect(seen.size).toBe(expected.length);
  for (const want of expected) {
    const got = seen.get(seriesKey(want));
    expect(got, `series ${seriesKey(want)}`).toBeDefined();
    if (!got) continue;
    expect({ count: got.count, min: got.min, max: got.max, windowEnd: got.windowEnd }).toEqual({ count: want.count, min: want.min, max: want.max, windowEnd: want.windowEnd });
    expect(got.avg).toBeCloseTo(want.avg, 9);
  }
}

describe('telemetry on the embedded MQTT broker', () => {
  const resources = new Resources();
  afterEach(() => resources.release());

  it('aggregates readings into windows equal to a reference, filters dashboards, refuses bad input and serves snapshots', async () => {
    const mqttPort = await freePort();
    const relais = await startRelais({ env: { MQTT_PORT: String(mqttPort) }, config: telemetryConfig() });
    resources.processes.push(relais);
    expect(relais.logs.join('\n')).toContain(`embedded MQTT broker on mqtt://127.0.0.1:${mqttPort}`);

    const everything = resources.on(await Dashboard.open(relais, ''), (d) => d.close());
    const twoDevices = resources.on(await Dashboard.open(relais, '?devices=d1,d2', 'alice'), (d) => d.close());
    // A second tab of the same user: its own stream, with its own events.
    const secondTab = resources.on(await Dashboard.open(relais, '?devices=d1,d2', 'alice'), (d) => d.close());
    const pressureOfD1 = resources.on(await Dashboard.open(relais, '?devices=d1&sensors=pressure', 'bob'), (d) => d.close());
    expect(everything.snapshot()).toEqual([]);

    const client = resources.on(await mqttConnect(`mqtt://127.0.0.1:${mqttPort}`), (c) => c.endAsync(true));
    const devices = ['d1', 'd2', 'd3'];
    const sending = publishReadings(client, (d) => `devices/${d}/metrics`, devices, 60, 1500);

    // Bad input meanwhile, on d1's own topic: none of it may reach d1's windows.
    const now = Date.now();
    const bad: [string, string][] = [
      ['devices/d1/metrics', '{"deviceId":"d1","sensorType":'],
      ['devices/d1/metrics', JSON.stringify({ deviceId: 'd1', sensorType: 'humidity', value: 1, timestamp: now })],
      ['devices/d1/metrics', `{"deviceId":"d1","sensorType":"temperature","value":1e999,"timestamp":${now}}`],
      ['devices/d1/metrics', JSON.stringify({ deviceId: 'd1', sensorType: 'temperature', value: 'NaN', timestamp: now })],
      ['devices/d1/metrics', JSON.stringify({ deviceId: 'd1', sensorType: 'temperature', value: 1e9, timestamp: now + 3_600_000 })],
      ['devices/d1/metrics', JSON.stringify({ deviceId: 'd1', sensorType: 'temperature', value: -1e9, timestamp: now - 3_600_000 })],
      ['devices/d1/metrics', JSON.stringify({ deviceId: 'd2', sensorType: 'temperature', value: 1e9, timestamp: now })],
    ];
    for (const [topic, payload] of bad) await client.publishAsync(topic, payload, { qos: 1 });

    // The HTTP batch endpoint: d4's readings, with a bad one in the middle.
    const batch: SentReading[] = Array.from({ length: 20 }, (_, i) => ({ deviceId: 'd4', sensorType: 'pressure', value: i * 1.5, timestamp: Date.now() }));
    const reply = await relais.call<{ accepted: number; rejected: { index: number; reason: string }[] }>('telemetry_ingest', {
      readings: [...batch.slice(0, 10), { deviceId: 'd4', sensorType: 'pressure', value: Number.MAX_VALUE }, ...batch.slice(10)],
    });
    expect(reply.accepted).toBe(20);
    expect(reply.rejected).toEqual([{ index: 10, reason: 'INVALID_VALUE' }]);
    const tooMany = await relais.api('telemetry_ingest', { readings: 'nope' });
    expect(tooMany.status).toBe(400);

    const sent = [...(await sending), ...batch];
    const reference = referenceAggregates(sent, WINDOW_MS);
    await waitFor(() => everything.counted() >= sent.length, 15_000, `aggregates covering ${sent.length} readings (have ${everything.counted()})`);
    await sleep(WINDOW_MS * 2);

    expectMatchesReference(everything.updates(), reference, new Set(['d1', 'd2', 'd3', 'd4']));
    expect(everything.counted()).toBe(sent.length);
    // Filters: only the devices and sensors asked for, and all of them.
    expect(new Set(twoDevices.updates().map((a) => a.deviceId))).toEqual(new Set(['d1', 'd2']));
    expectMatchesReference(twoDevices.updates(), reference, new Set(['d1', 'd2']));
    expect(secondTab.updates()).toEqual(twoDevices.updates());
    expect(pressureOfD1.updates().every((a) => a.deviceId === 'd1' && a.sensorType === 'pressure')).toBe(true);
    expect(pressureOfD1.counted()).toBe(sent.filter((r) => r.deviceId === 'd1' && r.sensorType === 'pressure').length);
    // Heartbeat comments keep idle streams open.
    expect(pressureOfD1.stream.comments).toContain('ping');

    // A dashboard opened now gets the latest window of each series of its devices.
    const late = resources.on(await Dashboard.open(relais, '?devices=d2,d4'), (d) => d.close());
    const latestOf = (deviceId: string, sensorType: string): Aggregate | undefined =>
      everything
        .updates()
        .filter((a) => a.deviceId === deviceId && a.sensorType === sensorType)
        .at(-1);
    const expectedSnapshot = [latestOf('d2', 'temperature'), latestOf('d2', 'pressure'), latestOf('d4', 'pressure')];
    expect(late.snapshot()).toHaveLength(3);
    expect(late.snapshot()).toEqual(expect.arrayContaining(expectedSnapshot));

    const metrics = await scrape(relais);
    expect(sample(metrics, 'relais_telemetry_readings_total', { source: 'mqtt' })).toBe(sent.length - batch.length);
    expect(sample(metrics, 'relais_telemetry_readings_total', { source: 'http' })).toBe(batch.length);
    const rejected = (reason: string): number => sample(metrics, 'relais_telemetry_rejected_total', { reason });
    expect({
      malformed: rejected('MALFORMED_JSON'),
      sensor: rejected('UNKNOWN_SENSOR'),
      value: rejected('INVALID_VALUE'),
      future: rejected('TIMESTAMP_FUTURE'),
      late: rejected('TIMESTAMP_LATE'),
      mismatch: rejected('DEVICE_MISMATCH'),
    }).toEqual({ malformed: 1, sensor: 1, value: 3, future: 1, late: 1, mismatch: 1 });
    expect(sample(metrics, 'relais_telemetry_dashboards')).toBe(5);
  }, 30_000);

  it('refuses a flooding device past its rate and counts every other reading exactly once', async () => {
    const mqttPort = await freePort();
    const relais = await startRelais({
      env: { MQTT_PORT: String(mqttPort) },
      config: telemetryConfig({ device_rate_limit: { burst: 50, per_second: 10 } }),
    });
    resources.processes.push(relais);
    const dashboard = resources.on(await Dashboard.open(relais, ''), (d) => d.close());
    const client = resources.on(await mqttConnect(`mqtt://127.0.0.1:${mqttPort}`), (c) => c.endAsync(true));
    const flood = 400;
    for (let i = 0; i < flood; i++) {
      await client.publishAsync('devices/flood/metrics', JSON.stringify({ deviceId: 'flood', sensorType: 'vibration', value: i, timestamp: Date.now() }), { qos: 1 });
    }
    const calm = await publishReadings(client, (d) => `devices/${d}/metrics`, ['calm'], 10, 300);
    await waitFor(() => dashboard.counted((d) => d === 'calm') >= calm.length, 10_000, 'the calm device aggregated');
    const metrics = await scrape(relais);
    const limited = sample(metrics, 'relais_telemetry_rejected_total', { reason: 'DEVICE_RATE_LIMITED' });
    expect(limited).toBeGreaterThan(0);
    await waitFor(() => dashboard.counted((d) => d === 'flood') + limited >= flood, 10_000, 'the flood accounted for');
    expect(dashboard.counted((d) => d === 'flood') + limited).toBe(flood);
    expectMatchesReference(dashboard.updates(), referenceAggregates(calm, WINDOW_MS), new Set(['calm']));
  }, 30_000);
});

describe('telemetry from an external MQTT broker (Mosquitto) across instances', () => {
  const resources = new Resources();
  let missing: string | undefined;
  beforeAll(async () => {
    if (!(await mqttAvailable(MOSQUITTO_URL))) missing = `no MQTT broker at ${MOSQUITTO_URL}`;
    else if (!(await sharedBusAvailable('redis'))) missing = `no Redis at ${SHARED_URL.redis}`;
  });
  afterEach(() => resources.release());

  /** An instance reading `root/devices/+/metrics` on Mosquitto in the shared subscription group `root`, on Redis when `clustered`. */
  function instance(root: string, prefix: string, clustered: boolean): Promise<RelaisProcess> {
    const env = {
      MQTT_BROKER_URL: MOSQUITTO_URL,
      ...(clustered ? busEnv('redis', SHARED_URL.redis, prefix) : {}),
    };
    return startRelais({ env, config: telemetryConfig({ mqtt: { topic: `${root}/devices/+/metrics`, shared_group: root } }) });
  }

  async function instances(count: number, root: string, prefix: string): Promise<RelaisProcess[]> {
    const started = await Promise.all(Array.from({ length: count }, () => instance(root, prefix, count > 1)));
    resources.processes.push(...started);
    // Every instance knows the others before readings flow (the merging instance is the same for all).
    for (const relais of started) {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const info = await relais.call<{ nodes: unknown[] }>('info', {});
        if (info.nodes.length >= count) break;
        if (Date.now() > deadline) throw new Error(`instance knows ${info.nodes.length} of ${count} nodes`);
        await sleep(100);
      }
    }
    return started;
  }

  async function run(count: number): Promise<{ updates: Aggregate[]; sent: SentReading[]; perInstance: number[]; root: string; prefix: string }> {
    const root = `relais-test-${randomUUID().slice(0, 8)}`;
    const prefix = `relais-telemetry-${root}`;
    if (count > 1) resources.on(prefix, (p) => deletePrefix('redis', p));
    const nodes = await instances(count, root, prefix);
    // The dashboard on the last instance: it gets windows merged wherever the merge happens.
    const dashboard = resources.on(await Dashboard.open(nodes[nodes.length - 1] as RelaisProcess, ''), (d) => d.close());
    const client = resources.on(await mqttConnect(MOSQUITTO_URL), (c) => c.endAsync(true));
    const sent = await publishReadings(client, (d) => `${root}/devices/${d}/metrics`, ['m1', 'm2', 'm3', 'm4'], 75, 1200);
    await waitFor(() => dashboard.counted() >= sent.length, 15_000, `aggregates covering ${sent.length} readings (have ${dashboard.counted()})`);
    // Anything published twice would come within the merge wait.
    await sleep(1600);
    const perInstance = await Promise.all(nodes.map(async (n) => sample(await scrape(n), 'relais_telemetry_readings_total', { source: 'mqtt' })));
    return { updates: dashboard.updates(), sent, perInstance, root, prefix };
  }

  it('counts every reading once: one instance, then three sharing the subscription, both equal to the reference', async () => {
    // The machine runs Mosquitto and Redis: without them this test fails rather than pass unseen.
    if (missing !== undefined) throw new Error(`${missing}: this test needs it`);
    const one = await run(1);
    expect(one.perInstance).toEqual([one.sent.length]);
    expectMatchesReference(one.updates, referenceAggregates(one.sent, WINDOW_MS), new Set(['m1', 'm2', 'm3', 'm4']));
    await resources.release();

    const three = await run(3);
    // The broker shared the readings out: every instance took some, and together all of them.
    expect(three.perInstance.every((n) => n > 0)).toBe(true);
    expect(three.perInstance.reduce((a, b) => a + b, 0)).toBe(three.sent.length);
    expectMatchesReference(three.updates, referenceAggregates(three.sent, WINDOW_MS), new Set(['m1', 'm2', 'm3', 'm4']));
    // An instance started now fills its snapshots from the channel's history on Redis.
    const latecomer = await instance(three.root, three.prefix, true);
    resources.processes.push(latecomer);
    const late = resources.on(await Dashboard.open(latecomer, '?devices=m1'), (d) => d.close());
    const latestOfM1 = SENSORS.map((sensor) => three.updates.filter((a) => a.deviceId === 'm1' && a.sensorType === sensor).at(-1));
    expect(late.snapshot()).toHaveLength(2);
    expect(late.snapshot()).toEqual(expect.arrayContaining(latestOfM1));

    const total = (updates: Aggregate[]): number => updates.reduce((n, a) => n + a.count, 0);
    expect(total(three.updates)).toBe(three.sent.length);
    expect(total(one.updates)).toBe(one.sent.length);
  }, 60_000);
});
