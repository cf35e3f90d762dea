import type { AccessRule } from '../config/schema.js';
import type { ResolvedChannel } from './channel.js';
import { RelaisError } from './errors.js';

/** What a client asks to do in a channel; reading history and presence needs `subscribe`. */
export type ChannelAction = 'subscribe' | 'publish';

/**
 * An asynchronous permission check that namespaces choose by rule name (`members`), built
 * by the composition root from a feature (the chat's room membership). Resolves when `user`
 * may do `action` in `channel`; rejects with FORBIDDEN when not, or with a temporary error
 * when it cannot tell (its store is down): never allows on doubt.
 */
export interface ChannelAuthorizer {
  authorize(action: ChannelAction, user: string, channel: ResolvedChannel): Promise<void>;
}

/** The rules checked by a ChannelAuthorizer rather than here. */
export type AsyncAccessRule = Extract<AccessRule, 'members'>;

/**
 * Whether `user` ('' when anonymous) passes a namespace rule for `channel` on its own.
 * `token` passes only with a subscription token, which the caller checks itself; `members`
 * needs its authorizer (see `authorize`).
 */
export function passesRule(rule: AccessRule, user: string, channel: ResolvedChannel): boolean {
  switch (rule) {
    case 'anonymous':
      return true;
    case 'authenticated':
      return user !== '';
    case 'owner':
      return user !== '' && channel.rest === user;
    case 'token':
    case 'members':
    case 'server-only':
      return false;
  }
}

function refusal(action: ChannelAction, rule: AccessRule, channel: ResolvedChannel): RelaisError {
  const why =
    rule === 'token'
      ? 'a subscription token is required'
      : rule === 'server-only'
        ? action === 'subscribe'
          ? 'only the server subscribes connections to it'
          : 'only the server API publishes there'
        : rule === 'owner'
          ? action === 'subscribe'
            ? 'it is the personal channel of another user'
            : 'only its owner publishes there'
          : rule === 'members'
            ? 'only members of the room may'
            : 'an authenticated user is required';
  return new RelaisError('FORBIDDEN', `cannot ${action} to "${channel.name}": ${why}`);
}

/**
 * Checks a namespace's rule for `action`, asking the authorizer of an asynchronous rule.
 * Resolves when allowed; rejects with FORBIDDEN (or the authorizer's temporary error).
 */
export async function authorize(
  authorizers: Readonly<Partial<Record<AsyncAccessRule, ChannelAuthorizer>>>,
  action: ChannelAction,
  user: string,
  channel: ResolvedChannel,
): Promise<void> {
  const rule = action === 'subscribe' ? channel.options.allow_subscribe : channel.options.allow_publish;
  if (rule === 'members') {
    const authorizer = authorizers.members;
    if (user === '' || !authorizer) throw refusal(action, rule, channel);
    await authorizer.authorize(action, user, channel);
    return;
  }
  if (!passesRule(rule, user, channel)) throw refusal(action, rule, channel);
}
