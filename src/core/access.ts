import type { AccessRule } from '../config/schema.js';
import type { ResolvedChannel } from './channel.js';
import { RelaisError } from './errors.js';

/**
 * Whether `user` ('' when anonymous) passes a namespace rule for `channel`.
 * `token` passes only with a subscription token, which the caller checks itself.
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
    case 'server-only':
      return false;
  }
}

export function assertCanSubscribe(user: string, channel: ResolvedChannel): void {
  const rule = channel.options.allow_subscribe;
  if (passesRule(rule, user, channel)) return;
  const why =
    rule === 'token'
      ? 'a subscription token is required'
      : rule === 'server-only'
        ? 'only the server subscribes connections to it'
        : rule === 'owner'
          ? 'it is the personal channel of another user'
          : 'an authenticated user is required';
  throw new RelaisError('FORBIDDEN', `cannot subscribe to "${channel.name}": ${why}`);
}

export function assertCanPublish(user: string, channel: ResolvedChannel): void {
  const rule = channel.options.allow_publish;
  if (passesRule(rule, user, channel)) return;
  const why =
    rule === 'server-only'
      ? 'only the server API publishes there'
      : rule === 'owner'
        ? 'only its owner publishes there'
        : 'an authenticated user is required';
  throw new RelaisError('FORBIDDEN', `cannot publish to "${channel.name}": ${why}`);
}
