/** The telemetry feature's Prometheus metrics, read from its plain counters at scrape time. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { RunningTelemetry } from './telemetry.js';

function mirrored(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      const value = read();
      if (value > 0) this.inc(value);
    },
  });
}

export function registerTelemetryMetrics(registry: Registry, telemetry: RunningTelemetry): void {
  const { stats } = telemetry;
  new Counter({
    name: 'relais_telemetry_readings_total',
    help: 'Device readings accepted into a window, by source (mqtt, http)',
    labelNames: ['source'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [source, n] of stats.accepted) if (n > 0) this.inc({ source }, n);
    },
  });
  new Counter({
    name: 'relais_telemetry_rejected_total',
    help: 'Device readings refused, by reason (docs/errors.md)',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of stats.rejected) if (n > 0) this.inc({ reason }, n);
    },
  });
  mirrored(registry, 'relais_telemetry_clamped_total', 'Readings slightly ahead of the clock, counted at their arrival time', () => stats.clamped);
  mirrored(registry, 'relais_telemetry_windows_closed_total', 'Windows this instance closed and reported', () => stats.windowsClosed);
  mirrored(registry, 'relais_telemetry_windows_published_total', 'Merged windows this instance published', () => stats.windowsPublished);
  mirrored(registry, 'relais_telemetry_aggregates_published_total', 'Device-sensor aggregates this instance published', () => stats.aggregatesPublished);
  mirrored(registry, 'relais_telemetry_late_partials_total', "Other instances' partial windows that arrived after their window was published", () => stats.latePartials);
  mirrored(registry, 'relais_telemetry_publish_failures_total', 'Merged windows the message bus did not accept', () => stats.publishFailures);
  mirrored(registry, 'relais_telemetry_updates_total', 'METRICS_UPDATE events written to dashboard streams', () => stats.updatesSent);
  new Gauge({
    name: 'relais_telemetry_open_series',
    help: "Device-sensor series in this instance's open windows",
    registers: [registry],
    collect() {
      this.set(telemetry.openSeries());
    },
  });
  new Gauge({
    name: 'relais_telemetry_dashboards',
    help: 'Open dashboard streams on this instance',
    registers: [registry],
    collect() {
      this.set(telemetry.dashboards.size);
    },
  });
}
