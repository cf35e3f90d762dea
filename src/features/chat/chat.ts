/**
 * The durable chat (issue 10; docs/chat.md): rooms with members, optimistic sends, read
 * positions and unread counts, direct messages, user status. Built by the composition root
 * when a store runs, in two steps: the access check goes into the node, the rest attaches to
 * the node through its seams (publish steps, rpc routes, server API methods, connection
 * observer, feature messages).
 */
import type { Logger } from 'pino';
import type { NamespaceOptions, RelaisConfig } from '../../config/schema.js';
import type { Node } from '../../core/node.js';
import type { RpcRouter } from '../../core/rpc_router.js';
import type { ServerApi } from '../../server/api.js';
import type { Store } from '../../stores/store.js';
import { registerChatApi } from './chat_api.js';
import { ChatRpc } from './chat_rpc.js';
import { DirectMessages } from './direct_messages.js';
import { MemberCache } from './member_cache.js';
import { MembersAuthorizer } from './members_authorizer.js';
import { ChatMessages } from './messages.js';
import type { ChatNamespaces } from './names.js';
import { ReadPositions } from './read_positions.js';
import { Rooms } from './rooms.js';
import type { ChatServices } from './services.js';
import { UserStatusTracker } from './user_status.js';

/** The access check of the `members` rule, given to the node when it is built. */
export interface ChatAccess {
  readonly namespaces: ChatNamespaces;
  readonly cache: MemberCache;
  readonly authorizer: MembersAuthorizer;
}

export interface RunningChat {
  readonly services: ChatServices;
  /** Stops the status clocks (before the node shuts down its connections). */
  stop(): void;
}

/** The namespaces of the embedded defaults; the personal one is `personal_namespace`. */
export function chatNamespaces(config: Readonly<RelaisConfig>): ChatNamespaces {
  return { room: 'room', dm: 'dm', status: 'status', personal: config.personal_namespace };
}

export function createChatAccess(config: Readonly<RelaisConfig>, store: Store): ChatAccess {
  const namespaces = chatNamespaces(config);
  const cache = new MemberCache({ ttlMs: config.chat.member_cache_ttl, maxEntries: config.chat.member_cache_size });
  return { namespaces, cache, authorizer: new MembersAuthorizer(store, cache, namespaces.dm) };
}

/** What a configuration changed in the chat's namespaces that turns a part of the chat off, by part. */
export interface ChatNamespaceProblems {
  readonly rooms?: string;
  readonly dm?: string;
  readonly status?: string;
}

/**
 * Checks the chat's namespaces: a configuration may define its own (see loadConfig), and a part
 * of the chat whose namespace does not fit stays off rather than misbehave.
 */
export function chatNamespaceProblems(config: Readonly<RelaisConfig>, namespaces: ChatNamespaces): ChatNamespaceProblems {
  const check = (ns: string, what: string, ok: (o: NamespaceOptions) => boolean): string | undefined => {
    const options = config.namespaces[ns];
    if (!options) return `namespace "${ns}" is not configured`;
    return ok(options) ? undefined : `namespaces.${ns} is not ${what}`;
  };
  const room = (o: NamespaceOptions): boolean => o.persist && o.allow_subscribe === 'members' && o.allow_publish === 'members';
  const rooms = check(namespaces.room, 'persistent with allow_subscribe and allow_publish "members"', room);
  const dm = check(namespaces.dm, 'persistent with allow_subscribe and allow_publish "members"', room);
  const status = check(namespaces.status, 'a namespace with history (history_size and history_ttl) and allow_publish "server-only"', (o) => o.history_size > 0 && o.history_ttl > 0 && o.allow_publish === 'server-only');
  return { ...(rooms ? { rooms } : {}), ...(dm ? { dm } : {}), ...(status ? { status } : {}) };
}

export interface AttachChat {
  readonly node: Node;
  readonly store: Store;
  readonly access: ChatAccess;
  readonly api: ServerApi;
  readonly rpc: RpcRouter;
  readonly logger: Logger;
}

/** Attaches the chat to a node built with its access check; call before the node takes connections. */
export function attachChat(deps: AttachChat): RunningChat {
  const { node, store, access } = deps;
  const config = node.config;
  const namespaces = access.namespaces;
  const logger = deps.logger.child({ component: 'chat' });
  const problems = chatNamespaceProblems(config, namespaces);
  if (problems.rooms) logger.warn(`chat rooms are off: ${problems.rooms}`);
  if (problems.dm) logger.warn(`direct messages stay on personal channels only: ${problems.dm}`);
  if (problems.status) logger.warn(`user statuses are not published: ${problems.status}`);
  const direct = new DirectMessages({ node, store, namespaces, logger });
  const rooms = new Rooms({ node, store, cache: access.cache, namespaces, logger, onChanged: (room) => direct.forget(room) });
  if (!problems.dm) {
    node.usePublishStep(namespaces.personal, direct);
    node.usePublishStep(namespaces.dm, direct);
  }
  const status = new UserStatusTracker({ node, store, namespaces, awayAfterMs: config.chat.away_after, publish: !problems.status, logger });
  if (config.chat.status) status.start();
  const services: ChatServices = {
    node,
    store,
    namespaces,
    rooms,
    members: access.authorizer,
    messages: new ChatMessages(node, namespaces, !problems.dm),
    reads: new ReadPositions(node, store, logger),
    status,
  };
  deps.rpc.route('chat.', new ChatRpc(services));
  registerChatApi(deps.api, services);
  return { services, stop: () => status.stop() };
}
