/**
 * Limits that hold across the instances of a deployment: connections per user (Redis and
 * NATS) and the per-user rate limit (Redis). Real processes on the machine's services.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { busEnv, deletePrefix, SHARED_URL } from './helpers/buses.js';
import { RawClient } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';

const started: RelaisProcess[] = [];

afterAll(async () => {
  for (const r of started) await r.stop().catch(() => undefined);
});

async function cluster(bus: 'redis' | 'nats', prefix: string, config: Record<string, unknown>): Promise<[RelaisProcess, RelaisProcess]> {
  const env = busEnv(bus, SHARED_URL[bus], prefix);
  const first = await startRelais({ env, config });
  // Same secrets for both: one deployment.
  const second = await startRelais({ env: { ...env, RELAIS_TOKEN_SECRET: first.secret, RELAIS_API_KEY: first.apiKey }, config });
  started.push(first, second);
  return [first, second];
}

for (const bus of ['redis', 'nats'] as const) {
  describe(`limits across instances (${bus})`, () => {
    const prefix = `relais-limits-${bus}-${randomBytes(4).toString('hex')}`;

    afterAll(async () => {
      // Stop the instances first: a running one would write its presence entries again.
      for (const r of started.splice(0)) await r.stop().catch(() => undefined);
      await deletePrefix(bus, prefix);
    });

    it('counts a user connections on every instance', async () => {
      const [a, b] = await cluster(bus, prefix, { client: { max_connections_per_user: 2 } });
      const token = await a.token('roaming');
      const onA = await RawClient.open(a);
      expect((await onA.connect(token))['connect']).toBeDefined();
      const onB = await RawClient.open(b);
      expect((await onB.connect(token))['connect']).toBeDefined();
      const third = await RawClient.open(a);
      third.sendCommands({ id: 1, connect: { token } });
      expect(await third.closed()).toEqual({ code: 3504, reason: 'connection limit' });
      onB.close();
      await onB.closed();
      const deadline = Date.now() + 5000;
      let accepted = false;
      while (!accepted && Date.now() < deadline) {
        const retry = await RawClient.open(a);
        retry.sendCommands({ id: 1, connect: { token } });
        await new Promise((r) => setTimeout(r, 200));
        accepted = retry.messages.some((m) => m['id'] === 1 && m['connect'] !== undefined);
        retry.close();
      }
      expect(accepted).toBe(true);
      onA.close();
    });

    if (bus === 'redis') {
      it('shares a user rate limit between instances', async () => {
        const [a, b] = await cluster(bus, `${prefix}-rl`, {
          rate_limit: { connection: { burst: 100, per_second: 100 }, user: { burst: 5, per_second: 0.1 } },
        });
        const token = await a.token('busy-user');
        const onA = await RawClient.open(a);
        await onA.connect(token);
        const onB = await RawClient.open(b);
        await onB.connect(token);
        const ids = [2, 3, 4, 5];
        onA.sendCommands(...ids.map((id) => ({ id, publish: { channel: 'chat:rl', data: id } })));
        onB.sendCommands(...ids.map((id) => ({ id, publish: { channel: 'chat:rl', data: id } })));
        const replies = [...(await Promise.all(ids.map((id) => onA.reply(id)))), ...(await Promise.all(ids.map((id) => onB.reply(id))))];
        const refused = replies.filter((r) => (r['error'] as { code?: number } | undefined)?.code === 111);
        expect(replies.length - refused.length).toBe(5);
        expect(refused.length).toBe(3);
        onA.close();
        onB.close();
        for (const r of started.splice(0)) await r.stop().catch(() => undefined);
        await deletePrefix('redis', `${prefix}-rl`);
      });
    }
  });
}
