/**
 * `POST /api/telemetry_ingest` (server API key): a batch of readings from a gateway or a
 * backend. Each reading is accepted or refused on its own; the reply says which were refused
 * and why, so a sender can fix or drop them without resending the accepted ones.
 */
import { RelaisError } from '../../core/errors.js';
import type { ServerApi } from '../../server/api.js';
import type { TelemetryIngest } from './ingest.js';
import type { RejectReason } from './reading.js';

/** Refused readings listed in a reply, at most; the counts cover them all. */
const MAX_LISTED = 100;

export function registerIngestApi(api: ServerApi, ingest: TelemetryIngest, maxBatch: number): void {
  api.register('telemetry_ingest', (params) => {
    const readings = (params as { readings?: unknown } | null)?.readings;
    if (!Array.isArray(readings)) throw new RelaisError('BAD_REQUEST', 'telemetry_ingest: params.readings must be an array of readings');
    if (readings.length > maxBatch) throw new RelaisError('LIMIT_EXCEEDED', `telemetry_ingest: more than ${maxBatch} readings in one call`);
    let accepted = 0;
    const rejected: { index: number; reason: RejectReason }[] = [];
    const counts: Partial<Record<RejectReason, number>> = {};
    readings.forEach((reading: unknown, index) => {
      const reason = ingest.reading(reading);
      if (reason === undefined) {
        accepted++;
        return;
      }
      counts[reason] = (counts[reason] ?? 0) + 1;
      if (rejected.length < MAX_LISTED) rejected.push({ index, reason });
    });
    return Promise.resolve({ accepted, rejected_counts: counts, rejected });
  });
}
