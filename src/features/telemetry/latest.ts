/**
 * The latest aggregate of each device and sensor on this instance, for the snapshot a
 * dashboard gets when it connects. Entries live `ttlMs` after the window they describe was
 * received; a device that went quiet drops out of snapshots.
 */

/** A device and sensor filter; null lets everything through. */
export interface AggregateFilter {
  readonly devices: ReadonlySet<string> | null;
  readonly sensors: ReadonlySet<string> | null;
}

interface LatestEntry {
  /** JSON text of the aggregate. */
  readonly text: string;
  readonly windowStart: number;
  readonly expiresAt: number;
}

export class LatestAggregates {
  private readonly byDevice = new Map<string, Map<string, LatestEntry>>();
  private lastSweep = 0;

  constructor(private readonly ttlMs: number) {}

  /** Keeps an aggregate unless a newer window of the same series is already kept. */
  set(deviceId: string, sensorType: string, windowStart: number, text: string, now: number): void {
    let sensors = this.byDevice.get(deviceId);
    if (!sensors) {
      sensors = new Map();
      this.byDevice.set(deviceId, sensors);
    }
    const known = sensors.get(sensorType);
    if (known && known.windowStart > windowStart) return;
    sensors.set(sensorType, { text, windowStart, expiresAt: now + this.ttlMs });
    if (now - this.lastSweep > this.ttlMs) this.sweep(now);
  }

  /** The JSON texts of the live aggregates the filter lets through. */
  snapshot(filter: AggregateFilter, now: number): string[] {
    const out: string[] = [];
    const add = (sensors: Map<string, LatestEntry>): void => {
      for (const [sensor, entry] of sensors) {
        if (entry.expiresAt > now && (filter.sensors === null || filter.sensors.has(sensor))) out.push(entry.text);
      }
    };
    if (filter.devices === null) {
      for (const sensors of this.byDevice.values()) add(sensors);
    } else {
      for (const device of filter.devices) {
        const sensors = this.byDevice.get(device);
        if (sensors) add(sensors);
      }
    }
    return out;
  }

  get size(): number {
    let n = 0;
    for (const sensors of this.byDevice.values()) n += sensors.size;
    return n;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [device, sensors] of this.byDevice) {
      for (const [sensor, entry] of sensors) if (entry.expiresAt <= now) sensors.delete(sensor);
      if (sensors.size === 0) this.byDevice.delete(device);
    }
  }
}
