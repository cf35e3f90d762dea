import { z } from 'zod';
import { RawJson, encodeClientInfo, toWireJson } from '../protocol/json_codec.js';
import { DisconnectCode, isReconnectCode } from '../protocol/codes.js';
import { RelaisError, toRelaisError } from '../core/errors.js';
import { toJsonText } from '../core/json.js';
import type { Node } from '../core/node.js';
import { EXCLUDE_CLIENT_TAG, type Publication } from '../core/publication.js';

/**
 * The HTTP server API, in Centrifugo's shapes: one handler per method, params in,
 * result out, RelaisError for failures. Transport (routes, auth) lives in transports/http.
 */

// The exclusion tag is Relais' own (see exclude_client): an API caller cannot set it by hand.
const tags = z.record(z.string().refine((key) => key !== EXCLUDE_CLIENT_TAG, `tag "${EXCLUDE_CLIENT_TAG}" is reserved: use exclude_client`), z.string()).optional();
const position = z.object({ offset: z.number().int().min(0), epoch: z.string() }).strict();
const channelParams = z.object({ channel: z.string() }).strict();

const schemas = {
  publish: z
    .object({
      channel: z.string(),
      data: z.unknown(),
      tags,
      skip_history: z.boolean().optional(),
      idempotency_key: z.string().min(1).max(256).optional(),
      /** A temporary id for an optimistic send: a persistent channel stores it and broadcasts it as tag `temp_id`. */
      temp_id: z.string().min(1).max(256).optional(),
      /** A client id (a connect reply's `client`) that does not receive this publication live: the user who caused it. */
      exclude_client: z.string().min(1).max(256).optional(),
    })
    .strict(),
  broadcast: z
    .object({
      channels: z.array(z.string()).min(1).max(10_000),
      data: z.unknown(),
      tags,
      skip_history: z.boolean().optional(),
      idempotency_key: z.string().min(1).max(256).optional(),
      exclude_client: z.string().min(1).max(256).optional(),
    })
    .strict(),
  subscribe: z.object({ user: z.string(), channel: z.string(), client: z.string().optional(), info: z.unknown().optional() }).strict(),
  unsubscribe: z.object({ user: z.string(), channel: z.string(), client: z.string().optional() }).strict(),
  disconnect: z
    .object({
      user: z.string(),
      client: z.string().optional(),
      whitelist: z.array(z.string()).optional(),
      disconnect: z.object({ code: z.number().int().min(3000).max(4999), reason: z.string().max(100) }).strict().optional(),
    })
    .strict(),
  send: z.object({ user: z.string(), client: z.string().optional(), data: z.unknown() }).strict(),
  presence: channelParams,
  presence_stats: channelParams,
  history: z
    .object({ channel: z.string(), limit: z.number().int().optional(), since: position.optional(), reverse: z.boolean().optional() })
    .strict(),
  history_remove: channelParams,
  latest: channelParams,
  channels: z.object({ pattern: z.string().max(1024).optional() }).strict(),
  info: z.object({}).strict(),
} as const;

export type ApiMethod = keyof typeof schemas | 'batch';
export const API_METHODS: readonly ApiMethod[] = [...(Object.keys(schemas) as (keyof typeof schemas)[]), 'batch'];

function parse<M extends keyof typeof schemas>(method: M, params: unknown): z.infer<(typeof schemas)[M]> {
  // Indexing a map of schemas by a generic key loses the pairing TypeScript can check.
  const schema: z.ZodType = schemas[method];
  const result = schema.safeParse(params ?? {});
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ');
    throw new RelaisError('BAD_REQUEST', `${method}: ${detail}`);
  }
  return result.data as z.infer<(typeof schemas)[M]>;
}

function wirePublication(p: Publication): Record<string, unknown> {
  return {
    data: new RawJson(p.data),
    ...(p.info ? { info: new RawJson(encodeClientInfo(p.info)) } : {}),
    ...(p.offset > 0 ? { offset: p.offset } : {}),
    ...(p.tags ? { tags: p.tags } : {}),
  };
}

/** The server API over one node. */
/**
 * A feature's server API method (`room_create`, ...): validates its own params (BAD_REQUEST
 * on anything wrong) and resolves with a result ready for toWireJson.
 */
export type ApiMethodHandler = (params: unknown) => Promise<unknown>;

export class ServerApi {
  private readonly extra = new Map<string, ApiMethodHandler>();

  constructor(private readonly node: Node) {}

  /** Adds a feature's method; the built-in methods and `batch` cannot be replaced. */
  register(method: string, handler: ApiMethodHandler): this {
    if ((API_METHODS as readonly string[]).includes(method) || this.extra.has(method)) throw new Error(`API method "${method}" is already defined`);
    if (!/^[a-z][a-z0-9_]{0,63}$/.test(method)) throw new Error(`API method name "${method}" must be lowercase letters, digits and _`);
    this.extra.set(method, handler);
    return this;
  }

  /** Runs one method; the result is ready for toWireJson. */
  async call(method: string, params: unknown): Promise<unknown> {
    switch (method) {
      case 'publish': {
        const p = parse('publish', params);
        return this.publishOne(p.channel, p);
      }
      case 'broadcast': {
        const p = parse('broadcast', params);
        const data = toJsonText(p.data);
        const responses = await Promise.all(
          p.channels.map(async (channel) => {
            try {
              return { result: await this.publishOne(channel, { ...p, data }, true) };
            } catch (err) {
              return { error: errorBody(toRelaisError(err)) };
            }
          }),
        );
        return { responses };
      }
      case 'subscribe': {
        const p = parse('subscribe', params);
        this.node.channels.resolve(p.channel);
        await this.node.control({
          type: 'subscribe',
          user: p.user,
          channel: p.channel,
          ...(p.client ? { client: p.client } : {}),
          ...(p.info !== undefined ? { chanInfo: toJsonText(p.info) } : {}),
        });
        return {};
      }
      case 'unsubscribe': {
        const p = parse('unsubscribe', params);
        await this.node.control({ type: 'unsubscribe', user: p.user, channel: p.channel, ...(p.client ? { client: p.client } : {}) });
        return {};
      }
      case 'disconnect': {
        const p = parse('disconnect', params);
        const d = p.disconnect ?? { code: DisconnectCode.forceNoReconnect, reason: 'force disconnect' };
        await this.node.control({
          type: 'disconnect',
          user: p.user,
          code: d.code,
          reason: d.reason || (isReconnectCode(d.code) ? 'force reconnect' : 'force disconnect'),
          ...(p.client ? { client: p.client } : {}),
          ...(p.whitelist ? { whitelist: p.whitelist } : {}),
        });
        return {};
      }
      case 'send': {
        const p = parse('send', params);
        await this.node.control({ type: 'message', user: p.user, data: toJsonText(p.data ?? null), ...(p.client ? { client: p.client } : {}) });
        return {};
      }
      case 'presence': {
        const p = parse('presence', params);
        const entries = await this.node.presenceOf(this.node.channels.resolve(p.channel));
        const presence: Record<string, RawJson> = {};
        for (const [id, info] of Object.entries(entries)) presence[id] = new RawJson(encodeClientInfo(info));
        return { presence };
      }
      case 'presence_stats': {
        const p = parse('presence_stats', params);
        const stats = await this.node.presenceStats(this.node.channels.resolve(p.channel));
        return { num_clients: stats.numClients, num_users: stats.numUsers };
      }
      case 'history': {
        const p = parse('history', params);
        const channel = this.node.channels.resolve(p.channel);
        const max = this.node.config.client.history_max_limit;
        const limit = p.limit === undefined ? 0 : p.limit < 0 ? max : Math.min(p.limit, max);
        const result = await this.node.history(channel, { limit, ...(p.since ? { since: p.since } : {}), ...(p.reverse ? { reverse: true } : {}) });
        return { publications: result.publications.map(wirePublication), epoch: result.position.epoch, offset: result.position.offset };
      }
      case 'latest': {
        const p = parse('latest', params);
        const snapshot = await this.node.latest(this.node.channels.resolve(p.channel));
        return {
          ...(snapshot.publication ? { publication: { ...wirePublication(snapshot.publication), time: snapshot.publication.time } } : {}),
          epoch: snapshot.position.epoch,
          offset: snapshot.position.offset,
          cached: snapshot.cached,
        };
      }
      case 'history_remove': {
        const p = parse('history_remove', params);
        await this.node.removeHistory(this.node.channels.resolve(p.channel));
        return {};
      }
      case 'channels': {
        const p = parse('channels', params);
        const counts = await this.node.activeChannels(p.pattern ?? '*');
        const channels: Record<string, { num_clients: number }> = {};
        for (const [name, n] of Object.entries(counts)) channels[name] = { num_clients: n };
        return { channels };
      }
      case 'info': {
        parse('info', params);
        return {
          nodes: this.node.nodes().map((n) => ({
            uid: n.id,
            name: n.name,
            version: n.version,
            num_clients: n.numClients,
            num_users: n.numUsers,
            num_subs: n.numSubs,
            num_channels: n.numChannels,
            uptime: n.uptimeSeconds,
          })),
        };
      }
      case 'batch':
        return this.batch(params);
      default: {
        const handler = this.extra.get(method);
        if (!handler) throw new RelaisError('METHOD_NOT_FOUND', `unknown API method "${method}"`);
        return handler(params);
      }
    }
  }

  private async publishOne(
    name: string,
    p: {
      data: unknown;
      tags?: Record<string, string> | undefined;
      skip_history?: boolean | undefined;
      idempotency_key?: string | undefined;
      temp_id?: string | undefined;
      exclude_client?: string | undefined;
    },
    dataIsText = false,
  ): Promise<{ offset?: number; epoch?: string }> {
    const channel = this.node.channels.resolvePublishTarget(name);
    const data = dataIsText ? (p.data as ReturnType<typeof toJsonText>) : toJsonText(p.data);
    const position = await this.node.publish(channel, data, {
      ...(p.tags ? { tags: p.tags } : {}),
      ...(p.skip_history ? { skipHistory: true } : {}),
      ...(p.idempotency_key ? { idempotencyKey: p.idempotency_key } : {}),
      ...(p.temp_id ? { tempId: p.temp_id } : {}),
      ...(p.exclude_client ? { excludeClient: p.exclude_client } : {}),
    });
    return position.offset > 0 ? { offset: position.offset, epoch: position.epoch } : {};
  }

  /** `{commands: [{publish: {...}}, ...], parallel?}` -> `{replies: [{publish: {...}} | {error}]}`. */
  private async batch(params: unknown): Promise<unknown> {
    const parsed = z
      .object({ commands: z.array(z.record(z.string(), z.unknown())).max(1000), parallel: z.boolean().optional() })
      .strict()
      .safeParse(params ?? {});
    if (!parsed.success) throw new RelaisError('BAD_REQUEST', 'batch: expected {"commands": [{"<method>": {...}}, ...]}');
    const run = async (command: Record<string, unknown>): Promise<unknown> => {
      const entries = Object.entries(command);
      const [method, inner] = entries[0] ?? ['', undefined];
      if (entries.length !== 1 || method === 'batch') {
        return { error: errorBody(new RelaisError('BAD_REQUEST', 'each batch command holds exactly one method, not batch')) };
      }
      try {
        return { [method]: await this.call(method, inner) };
      } catch (err) {
        return { error: errorBody(toRelaisError(err)) };
      }
    };
    const commands = parsed.data.commands;
    if (parsed.data.parallel) return { replies: await Promise.all(commands.map(run)) };
    const replies: unknown[] = [];
    for (const command of commands) replies.push(await run(command));
    return { replies };
  }
}

export function errorBody(err: RelaisError): { code: number; message: string; temporary?: true } {
  return { code: err.wireCode, message: err.message, ...(err.temporary ? { temporary: true as const } : {}) };
}

export { toWireJson };
