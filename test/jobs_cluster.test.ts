/**
 * Latest-value channels and job progress across two instances, on Redis and on NATS: the
 * worker publishes through A; on B, an SSE stream opened mid-job gets the current state (read
 * from the bus's history), the next states and `complete`, then ends; a stream resumed on a
 * third instance C (which follows nothing) from an id given by A replays what it missed from
 * the bus's history; the centrifuge SDK on B gets the
 * latest state on subscribe; and B's `latest` misses once then follows A's publications from memory.
 */
import { randomBytes } from 'node:crypto';
import type { SubscribedContext } from 'centrifuge';
import { afterAll, expect, it } from 'vitest';
import { busEnv, deletePrefix, describeWithBus, sharedBusAvailable, SHARED_URL, type BusKind } from './helpers/buses.js';
import { sdkClient, waitFor, type SdkClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';
import { EventSourceClient } from './helpers/sse.js';

interface JobState {
  readonly status: string;
  readonly progress: number;
}

const available = new Map<BusKind, boolean>();
for (const bus of ['redis', 'nats'] as const) available.set(bus, await sharedBusAvailable(bus));

for (const bus of ['redis', 'nats'] as const) {
  describeWithBus(`latest-value channels and job progress across 2 instances (${bus})`, available.get(bus) ? undefined : `the shared ${bus} is not reachable`, () => {
    const prefix = `relais-jobs-${bus}-${randomBytes(4).toString('hex')}`;
    const nodes: RelaisProcess[] = [];
    const sources: EventSourceClient[] = [];
    const sdks: SdkClient[] = [];

    afterAll(async () => {
      for (const s of sources) s.close();
      for (const c of sdks) c.close();
      for (const n of nodes) await n.stop().catch(() => undefined);
      await deletePrefix(bus, prefix);
    });

    it('serves the current state, progress, complete and latest on B for a job published through A', async () => {
      const env = busEnv(bus, SHARED_URL[bus], prefix);
      const a = await startRelais({ env });
      nodes.push(a);
      const b = await startRelais({ env: { ...env, RELAIS_TOKEN_SECRET: a.secret, RELAIS_API_KEY: a.apiKey } });
      const c = await startRelais({ env: { ...env, RELAIS_TOKEN_SECRET: a.secret, RELAIS_API_KEY: a.apiKey } });
      nodes.push(b, c);
      const id = `job-${randomBytes(4).toString('hex')}`;
      const channel = `batch:${id}`;
      const publish = (state: JobState): Promise<unknown> => a.call('publish', { channel, data: state });
      const follow = async (node: RelaisProcess, headers: Record<string, string> = {}): Promise<EventSourceClient> => {
        const source = new EventSourceClient(`${node.httpUrl}/sse?channel=${channel}`, { token: await a.token('viewer'), events: ['progress', 'complete'], firstHeaders: headers });
        sources.push(source);
        return source;
      };
      const progress = (s: EventSourceClient): { offset: number; data: JobState }[] =>
        s.events.filter((e) => e.type === 'progress').map((e) => JSON.parse(e.data) as { offset: number; data: JobState });

      await publish({ status: 'PROCESSING', progress: 0 });
      await publish({ status: 'PROCESSING', progress: 20 });

      // B's latest: one read of the bus, then memory, kept current with A's publications.
      expect(await b.call('latest', { channel })).toMatchObject({ offset: 2, cached: false, publication: { data: { progress: 20 } } });
      expect(await b.call('latest', { channel })).toMatchObject({ offset: 2, cached: true });
      await publish({ status: 'PROCESSING', progress: 30 });
      let latest: { offset?: number; cached?: boolean } = {};
      const deadline = Date.now() + 5000;
      while (latest.offset !== 3 && Date.now() < deadline) latest = await b.call('latest', { channel });
      expect(latest).toMatchObject({ offset: 3, cached: true, publication: { data: { progress: 30 } } });

      // The centrifuge SDK on B: the latest state first, with Centrifugo's cache mode flags.
      const sdk = await sdkClient(b, 'watcher');
      sdks.push(sdk);
      const contexts: SubscribedContext[] = [];
      const sub = sdk.subscribe(channel, { since: {} });
      sub.on('subscribed', (ctx) => contexts.push(ctx));
      await sub.ready(5000);
      await waitFor(() => sdk.pubs(channel).length === 1, 5000, 'the latest state on the SDK');
      expect(contexts[0]).toMatchObject({ recoverable: true, wasRecovering: true, recovered: true });
      expect((sdk.pubs(channel)[0]?.data as JobState).progress).toBe(30);

      // An SSE stream on A, cut, resumed on C (which reads the missed states from the bus).
      const first = await follow(a);
      await waitFor(() => progress(first).length === 1, 10_000, 'the snapshot on A');
      const lastId = first.lastEventId;
      first.close();
      await publish({ status: 'PROCESSING', progress: 40 });
      await publish({ status: 'PROCESSING', progress: 50 });
      const resumed = await follow(c, { 'Last-Event-ID': lastId });
      const fresh = await follow(b);
      await waitFor(() => progress(resumed).length === 2 && progress(fresh).length === 1, 20_000, 'the resumed stream on C and the fresh one on B').catch((err: unknown) => {
        throw new Error(`${String(err)}: resumed ${JSON.stringify(resumed.events)} ${JSON.stringify(resumed.attempts.map((x) => x.status))}, fresh ${JSON.stringify(fresh.events)}`);
      });
      await publish({ status: 'FAILED', progress: 50 });
      await waitFor(() => resumed.named('complete').length === 1 && fresh.named('complete').length === 1, 20_000, 'complete on both streams');
      await waitFor(() => resumed.source.readyState === resumed.source.CLOSED && fresh.source.readyState === fresh.source.CLOSED, 10_000, 'both streams closed');

      expect([...progress(first), ...progress(resumed)].map((p) => p.offset)).toEqual([3, 4, 5, 6]);
      expect(progress(fresh).map((p) => p.data.progress)).toEqual([50, 50]);
      expect(progress(fresh).map((p) => p.data.status)).toEqual(['PROCESSING', 'FAILED']);
      await waitFor(() => sdk.pubs(channel).length === 4, 5000, 'the live states on the SDK');
      expect(sdk.pubs(channel).map((ctx) => ctx.offset)).toEqual([3, 4, 5, 6]);
    });
  });
}
