/**
 * SSE glob streams across instances: a `chat:*` stream on one instance receives the
 * publications made through another, on channels nobody on its instance subscribed to,
 * and resumes from its Last-Event-ID on a third instance. Redis and NATS.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { busEnv, deletePrefix, SHARED_URL } from './helpers/buses.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';
import { RawSseStream } from './helpers/sse.js';

for (const bus of ['redis', 'nats'] as const) {
  describe(`SSE globs across instances (${bus})`, () => {
    const prefix = `relais-sse-${bus}-${randomBytes(4).toString('hex')}`;
    const nodes: RelaisProcess[] = [];
    const streams: RawSseStream[] = [];

    afterAll(async () => {
      for (const s of streams) await s.close();
      for (const n of nodes) await n.stop().catch(() => undefined);
      await deletePrefix(bus, prefix);
    });

    it('delivers every channel of a glob published anywhere, and resumes elsewhere', async () => {
      const env = busEnv(bus, SHARED_URL[bus], prefix);
      const a = await startRelais({ env });
      nodes.push(a);
      const shared = { ...env, RELAIS_TOKEN_SECRET: a.secret, RELAIS_API_KEY: a.apiKey };
      const b = await startRelais({ env: shared });
      const c = await startRelais({ env: shared });
      nodes.push(b, c);
      const auth = { authorization: `Bearer ${await a.token('wall')}` };

      const first = await RawSseStream.open(`${b.httpUrl}/sse?channel=chat:*`, auth);
      streams.push(first);
      await first.waitFor((s) => s.events.some((e) => e.type === 'subscribed'), 10_000, 'glob subscribed');
      for (let n = 1; n <= 30; n++) await a.call('publish', { channel: `chat:room-${n % 3}`, data: { n } });
      await first.waitForPublications(30);
      const seen = first.publications().map((p) => (p.data as { n: number }).n);
      expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      const lastId = [...first.events].reverse().find((e) => e.id !== undefined)?.id ?? '';
      await first.close();

      for (let n = 31; n <= 45; n++) await a.call('publish', { channel: `chat:room-${n % 4}`, data: { n } });
      const resumed = await RawSseStream.open(`${c.httpUrl}/sse?channel=chat:*`, { ...auth, 'last-event-id': lastId });
      streams.push(resumed);
      await resumed.waitForPublications(15);
      await a.call('publish', { channel: 'chat:room-9', data: { n: 46 } });
      await resumed.waitForPublications(16);
      const values = resumed.publications().map((p) => (p.data as { n: number }).n).sort((x, y) => x - y);
      expect(values).toEqual(Array.from({ length: 16 }, (_, i) => i + 31));
    });
  });
}
