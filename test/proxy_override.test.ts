/**
 * The subscribe proxy's `override` (docs/proxy.md): a real Relais process, a real HTTP backend
 * and the `centrifuge` SDK. The backend turns namespace options on or off for one
 * subscription; other subscriptions of the same namespace keep the namespace's options.
 */
import { Centrifuge, type JoinContext, type Subscription } from 'centrifuge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep, waitFor } from './helpers/clients.js';
import { headerWebSocket, ProxyBackend } from './helpers/proxy_backend.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';


describe('subscribe proxy override', () => {
  let backend: ProxyBackend;
  let relais: RelaisProcess;
  const open: Centrifuge[] = [];

  async function connect(user: string): Promise<Centrifuge> {
    const centrifuge = new Centrifuge(relais.wsUrl, { websocket: headerWebSocket({ cookie: `session=${user}` }), timeout: 3000 });
    open.push(centrifuge);
    centrifuge.connect();
    await centrifuge.ready(5000);
    return centrifuge;
  }

  async function subscribed(centrifuge: Centrifuge, channel: string, joins: JoinContext[] = []): Promise<{ sub: Subscription; ctx: { recoverable: boolean; positioned: boolean } }> {
    const sub = centrifuge.newSubscription(channel);
    sub.on('join', (ctx) => joins.push(ctx));
    const ctx = new Promise<{ recoverable: boolean; positioned: boolean }>((resolve, reject) => {
      sub.on('subscribed', resolve);
      sub.on('error', (e) => reject(new Error(`subscribe error ${e.error.code}: ${e.error.message}`)));
    });
    sub.subscribe();
    return { sub, ctx: await ctx };
  }

  beforeAll(async () => {
    backend = await ProxyBackend.start();
    backend.on('/connect', (r) => ({ answer: { result: { user: /session=([^;]+)/.exec(String(r.headers['cookie']))?.[1] ?? '' } } }));
    backend.on('/subscribe', (r) => {
      const channel = String(r.body['channel']);
      const user = String(r.body['user']);
      if (channel === 'quiet:loud') return { answer: { result: { override: { join_leave: { value: true } } } } };
      if (channel === 'quiet:hidden' && user === 'ghost') return { answer: { result: { override: { presence: { value: false } } } } };
      if (channel === 'quiet:recover') return { answer: { result: { override: { force_recovery: { value: true } } } } };
      if (channel === 'quiet:bad') return { answer: { result: { override: { presence: true } } } };
      if (channel === 'loud:deaf' && user === 'deaf') return { answer: { result: { override: { force_push_join_leave: { value: false } } } } };
      return { answer: { result: {} } };
    });
    relais = await startRelais({
      config: {
        proxy: { connect_url: `${backend.url}/connect`, subscribe_url: `${backend.url}/subscribe`, http_headers: ['Cookie'], timeout: '2s' },
        namespaces: {
          quiet: { proxy_subscribe: true, presence: true, allow_presence: true, join_leave: false, history_size: 10, history_ttl: '5m' },
          loud: { proxy_subscribe: true, presence: true, join_leave: true },
        },
      },
    });
  });

  afterAll(async () => {
    for (const c of open) c.disconnect();
    await relais?.stop();
    await backend?.close();
  });

  it('join_leave true on a namespace without it: that subscription publishes and gets join events, the others of the namespace do not', async () => {
    const alice = await connect('alice');
    const bob = await connect('bob');
    const loudJoins: JoinContext[] = [];
    const plainJoins: JoinContext[] = [];
    await subscribed(alice, 'quiet:loud', loudJoins);
    await subscribed(alice, 'quiet:plain', plainJoins);
    await subscribed(bob, 'quiet:plain');
    await subscribed(bob, 'quiet:loud');
    await waitFor(() => loudJoins.some((j) => j.info.user === 'bob'), 5000, 'join of bob in quiet:loud');
    // Bob's join in quiet:plain was subscribed before his quiet:loud one: it would have come by now.
    await sleep(200);
    expect(plainJoins).toEqual([]);
  });

  it('presence false: that subscriber is left out of the channel presence, the others are in it', async () => {
    const carol = await connect('carol');
    const ghost = await connect('ghost');
    const { sub } = await subscribed(carol, 'quiet:hidden');
    await subscribed(ghost, 'quiet:hidden');
    const users = async (): Promise<string[]> => Object.values((await sub.presence()).clients).map((c) => c.user).sort();
    const deadline = Date.now() + 5000;
    while ((await users()).length < 1 && Date.now() < deadline) await sleep(50);
    await sleep(200);
    expect(await users()).toEqual(['carol']);
  });

  it('force_recovery true: the subscription is recoverable though the namespace does not force it', async () => {
    const dave = await connect('dave');
    expect((await subscribed(dave, 'quiet:recover')).ctx.recoverable).toBe(true);
    expect((await subscribed(dave, 'quiet:norecover')).ctx.recoverable).toBe(false);
  });

  it('force_push_join_leave false on a namespace with join_leave: that subscriber gets no join events, its own join is still published', async () => {
    const erin = await connect('erin');
    const deaf = await connect('deaf');
    const erinJoins: JoinContext[] = [];
    const deafJoins: JoinContext[] = [];
    await subscribed(deaf, 'loud:deaf', deafJoins);
    await subscribed(erin, 'loud:deaf', erinJoins);
    const frank = await connect('frank');
    await subscribed(frank, 'loud:deaf');
    await waitFor(() => erinJoins.some((j) => j.info.user === 'frank'), 5000, 'join of frank seen by erin');
    await sleep(200);
    expect(deafJoins).toEqual([]);
    const late = await connect('late');
    const lateJoins: JoinContext[] = [];
    await subscribed(late, 'loud:deaf', lateJoins);
    const deafLeft = new Promise<void>((resolve) => late.getSubscription('loud:deaf')?.on('leave', (ctx) => ctx.info.user === 'deaf' && resolve()));
    deaf.disconnect();
    await deafLeft;
  });

  it('an override that is not {"value": bool} is a temporary error, and the connection keeps working', async () => {
    const gina = await connect('gina');
    const sub = gina.newSubscription('quiet:bad');
    const error = new Promise<{ code: number; temporary?: boolean }>((resolve) => sub.on('error', (ctx) => resolve(ctx.error)));
    sub.subscribe();
    expect(await error).toMatchObject({ code: 100, temporary: true });
    sub.unsubscribe();
    await subscribed(gina, 'quiet:fine');
  });
});
