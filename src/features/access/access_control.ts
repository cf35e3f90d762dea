/**
 * Blocking users and revoking tokens (docs/api.md, `block_user` and the next methods): the
 * server API records a revocation in the durable store, then tells every instance over the
 * bus; each one disconnects the matching connections it holds and refuses them on connect and
 * on token refresh. Instances load the stored revocations at start-up and reload them every
 * minute (what a bus outage hid). Without a store the revocations live in memory only: a
 * restarted instance forgets them.
 */
import { z } from 'zod';
import type { Logger } from 'pino';
import type { ConnectionClaims, TokenIdentity } from '../../core/auth.js';
import { Disconnects, RelaisError, type Disconnect } from '../../core/errors.js';
import { toJsonText, type JsonText } from '../../core/json.js';
import type { Node } from '../../core/node.js';
import type { ServerApi } from '../../server/api.js';
import type { Store } from '../../stores/store.js';
import { channelTokensKey, parseChannelTokensKey, RevocationIndex, type RevocationReason } from './revocation_index.js';

const TOPIC = 'access';
const RELOAD_MS = 60_000;
const MAX_LOADED = 100_000;

const expireAt = z.number().int().min(0).optional();
const schemas = {
  block_user: z.object({ user: z.string().min(1).max(1024), expire_at: expireAt }).strict(),
  unblock_user: z.object({ user: z.string().min(1).max(1024) }).strict(),
  revoke_token: z.object({ uid: z.string().min(1).max(1024), expire_at: expireAt }).strict(),
  invalidate_user_tokens: z
    .object({ user: z.string().min(1).max(1024), issued_before: z.number().int().min(0).optional(), expire_at: expireAt, channel: z.string().min(1).max(1024).optional() })
    .strict(),
} as const;

const change = z.union([
  z.object({ op: z.literal('put'), kind: z.enum(['user', 'token', 'user_tokens', 'channel_tokens']), key: z.string(), issuedBefore: z.number(), expiresAt: z.number() }),
  z.object({ op: z.literal('delete'), kind: z.enum(['user', 'token', 'user_tokens', 'channel_tokens']), key: z.string() }),
]);
type Change = z.infer<typeof change>;

function parse<M extends keyof typeof schemas>(method: M, params: unknown): z.infer<(typeof schemas)[M]> {
  const schema: z.ZodType = schemas[method];
  const result = schema.safeParse(params ?? {});
  if (!result.success) {
    throw new RelaisError('BAD_REQUEST', `${method}: ${result.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ')}`);
  }
  return result.data as z.infer<(typeof schemas)[M]>;
}

/** Unix seconds (Centrifugo's unit) to Unix ms; absent or 0: never expires. */
function expiryMs(seconds: number | undefined): number {
  return seconds === undefined || seconds === 0 ? 0 : seconds * 1000;
}

const DISCONNECTS: Record<RevocationReason, Disconnect> = { 'user blocked': Disconnects.userBlocked, 'token revoked': Disconnects.tokenRevoked };

export interface AccessControlOptions {
  readonly node: Node;
  readonly api: ServerApi;
  /** The durable store; without one revocations are kept in memory only. */
  readonly store?: Store;
  readonly logger: Logger;
}

export interface RunningAccessControl {
  /** Resolves once the stored revocations are loaded (or their load failed and was logged). */
  readonly loaded: Promise<void>;
  stop(): void;
}

export function attachAccessControl(options: AccessControlOptions): RunningAccessControl {
  const { node, api, store } = options;
  const logger = options.logger.child({ component: 'access' });
  const index = new RevocationIndex();

  const refusal = (token: TokenIdentity): Disconnect | undefined => {
    const reason = index.reason(token, Date.now());
    return reason && DISCONNECTS[reason];
  };
  node.useConnectionGate({ refusal: (claims: ConnectionClaims) => refusal(claims) });
  node.useSubscriptionGate({ refusal: (user, channel, issuedAt) => (user === '' ? undefined : index.channelReason(user, channel, issuedAt, Date.now())) });

  node.onFeatureMessage(TOPIC, (data: JsonText) => {
    let parsed: Change;
    try {
      parsed = change.parse(JSON.parse(data));
    } catch (err) {
      logger.warn({ err }, 'malformed revocation message ignored');
      return;
    }
    if (parsed.op === 'delete') {
      index.delete(parsed.kind, parsed.key);
      return;
    }
    index.put({ kind: parsed.kind, key: parsed.key, issuedBefore: parsed.issuedBefore, expiresAt: parsed.expiresAt });
    if (parsed.kind === 'channel_tokens') {
      // Subscriptions, not connections: this user's subscriptions to the channel made with an older token end.
      const pair = parseChannelTokensKey(parsed.key);
      if (pair) node.recheckSubscriptions(pair.user, pair.channel);
      else logger.warn({ key: parsed.key }, 'malformed channel_tokens revocation key ignored');
      return;
    }
    const now = Date.now();
    // Only the connections this revocation can touch are looked at closely.
    const disconnected = node.disconnectMatching(
      (client) => client.token !== undefined && (parsed.kind === 'token' ? client.token.tokenId === parsed.key : client.user === parsed.key) && index.reason(client.token, now) !== undefined,
      parsed.kind === 'user' ? Disconnects.userBlocked : Disconnects.tokenRevoked,
    );
    if (disconnected > 0) logger.info({ kind: parsed.kind, key: parsed.key, disconnected }, 'connections ended by a revocation');
  });

  const apply = async (next: Change): Promise<void> => {
    if (store) {
      if (next.op === 'put') await store.putRevocation({ kind: next.kind, key: next.key, issuedBefore: next.issuedBefore, expiresAt: next.expiresAt });
      else await store.deleteRevocation(next.kind, next.key);
    }
    await node.control({ type: 'feature', topic: TOPIC, data: toJsonText(next) });
  };

  api.register('block_user', async (params) => {
    const p = parse('block_user', params);
    await apply({ op: 'put', kind: 'user', key: p.user, issuedBefore: 0, expiresAt: expiryMs(p.expire_at) });
    return {};
  });
  api.register('unblock_user', async (params) => {
    const p = parse('unblock_user', params);
    await apply({ op: 'delete', kind: 'user', key: p.user });
    return {};
  });
  api.register('revoke_token', async (params) => {
    const p = parse('revoke_token', params);
    await apply({ op: 'put', kind: 'token', key: p.uid, issuedBefore: 0, expiresAt: expiryMs(p.expire_at) });
    return {};
  });
  api.register('invalidate_user_tokens', async (params) => {
    const p = parse('invalidate_user_tokens', params);
    const issuedBefore = p.issued_before === undefined ? Math.floor(Date.now() / 1000) * 1000 : p.issued_before * 1000;
    if (p.channel !== undefined) {
      // Centrifugo PRO's `channel`: the user's subscription tokens for that channel, not its connection tokens.
      const key = channelTokensKey(p.user, node.channels.resolve(p.channel).name);
      if (key.length > 1024) throw new RelaisError('BAD_REQUEST', 'invalidate_user_tokens: user and channel together longer than 1024 characters');
      await apply({ op: 'put', kind: 'channel_tokens', key, issuedBefore, expiresAt: expiryMs(p.expire_at) });
      return {};
    }
    await apply({ op: 'put', kind: 'user_tokens', key: p.user, issuedBefore, expiresAt: expiryMs(p.expire_at) });
    return {};
  });

  const reload = async (): Promise<void> => {
    if (!store) return;
    const mark = index.mark();
    try {
      const loaded = await store.listRevocations(Date.now(), MAX_LOADED);
      index.replace(loaded, mark);
      if (loaded.length === MAX_LOADED) logger.warn({ limit: MAX_LOADED }, 'too many revocations: some were not loaded; give them an expiry');
    } catch (err) {
      logger.warn({ err }, 'revocations not reloaded from the store; retrying later');
    }
  };
  const timer = setInterval(() => void reload(), RELOAD_MS);
  timer.unref();
  return {
    loaded: reload(),
    stop: () => clearInterval(timer),
  };
}

