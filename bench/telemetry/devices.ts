/**
 * A load process of simulated devices: one MQTT connection publishing the readings of its
 * devices (QoS 0, as sensors do), at a steady rate, for a bounded time. Driven over IPC by
 * run.ts: `{type: 'run', ...}` answers `{type: 'done', sent}`.
 */
import mqtt from 'mqtt';

export interface DevicesRun {
  readonly type: 'run';
  readonly url: string;
  /** Prefix of the topic (`<root>devices/<id>/metrics`). */
  readonly root: string;
  readonly devices: readonly string[];
  /** Readings per second, all devices of this process together. */
  readonly rate: number;
  readonly seconds: number;
}

export type FromDevices = { readonly type: 'done'; readonly sent: number } | { readonly type: 'fatal'; readonly message: string };

const SENSORS = ['temperature', 'vibration', 'pressure'] as const;
const TICK_MS = 10;
/** Bytes waiting in the connection before this process stops making readings (about 100 ms of them at 10,000/s). */
const MAX_BACKLOG_BYTES = 128 * 1024;

async function run(order: DevicesRun): Promise<number> {
  const client = mqtt.connect(order.url, { reconnectPeriod: 0, connectTimeout: 10_000 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  const topics = order.devices.map((d) => `${order.root}devices/${d}/metrics`);
  let sent = 0;
  let skipped = 0;
  let next = 0;
  const started = Date.now();
  const end = started + order.seconds * 1000;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = Date.now();
      if (now >= end) {
        resolve();
        return;
      }
      // Catch up to the rate since the start: a late tick sends more, the total stays on rate.
      const due = Math.floor(((now - started) * order.rate) / 1000) - sent - skipped;
      // Readings the socket has not taken yet would leave late with a stale timestamp: a
      // device measures when it sends. Past the backlog bound, this tick's readings are not
      // made (counted as skipped): the offered rate drops to what this process can send.
      if (client.stream.writableLength > MAX_BACKLOG_BYTES) {
        skipped += due;
        setTimeout(tick, TICK_MS);
        return;
      }
      for (let i = 0; i < due; i++) {
        const index = next++ % topics.length;
        const deviceId = order.devices[index] as string;
        const sensorType = SENSORS[Math.floor(next / topics.length) % SENSORS.length] as string;
        client.publish(topics[index] as string, JSON.stringify({ deviceId, sensorType, value: Math.random() * 100, timestamp: now }));
        sent++;
      }
      setTimeout(tick, TICK_MS);
    };
    tick();
  });
  await client.endAsync();
  return sent;
}

process.on('message', (message: DevicesRun) => {
  run(message).then(
    (sent) => process.send?.({ type: 'done', sent } satisfies FromDevices),
    (err: unknown) => process.send?.({ type: 'fatal', message: err instanceof Error ? err.message : String(err) } satisfies FromDevices),
  );
});
