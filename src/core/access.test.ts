import { describe, expect, it } from 'vitest';
import { namespaceOptions, type NamespaceOptionsInput } from '../config/schema.js';
import { authorize, type ChannelAction, type ChannelAuthorizer } from './access.js';
import type { ResolvedChannel } from './channel.js';
import { RelaisError } from './errors.js';

function channel(name: string, options: NamespaceOptionsInput): ResolvedChannel {
  const [namespace = '', rest = ''] = name.split(':');
  return { name, namespace, rest, options: namespaceOptions.parse(options) };
}

async function refusal(promise: Promise<void>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return err instanceof RelaisError ? err.code : String(err);
  }
  return 'allowed';
}

describe('authorize', () => {
  it('applies the synchronous rules as they are', async () => {
    const owner = channel('user:alice', { allow_subscribe: 'owner', allow_publish: 'server-only' });
    expect(await refusal(authorize({}, 'subscribe', 'alice', owner))).toBe('allowed');
    expect(await refusal(authorize({}, 'subscribe', 'bob', owner))).toBe('FORBIDDEN');
    expect(await refusal(authorize({}, 'publish', 'alice', owner))).toBe('FORBIDDEN');
  });

  it('asks the members authorizer, with the action, and refuses the anonymous and a rule with no authorizer', async () => {
    const room = channel('room:dev', { allow_subscribe: 'members', allow_publish: 'members' });
    const asked: [ChannelAction, string, string][] = [];
    const members: ChannelAuthorizer = {
      authorize(action, user, ch) {
        asked.push([action, user, ch.name]);
        return user === 'alice' ? Promise.resolve() : Promise.reject(new RelaisError('FORBIDDEN'));
      },
    };
    expect(await refusal(authorize({ members }, 'subscribe', 'alice', room))).toBe('allowed');
    expect(await refusal(authorize({ members }, 'publish', 'mallory', room))).toBe('FORBIDDEN');
    expect(await refusal(authorize({ members }, 'publish', '', room))).toBe('FORBIDDEN');
    expect(await refusal(authorize({}, 'subscribe', 'alice', room))).toBe('FORBIDDEN');
    expect(asked).toEqual([
      ['subscribe', 'alice', 'room:dev'],
      ['publish', 'mallory', 'room:dev'],
    ]);
  });
});
