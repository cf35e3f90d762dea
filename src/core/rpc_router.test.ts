import { describe, expect, it } from 'vitest';
import { RelaisError } from './errors.js';
import type { JsonText } from './json.js';
import type { RpcHandler } from './rpc.js';
import { RpcRouter, type RpcMethods } from './rpc_router.js';

const caller = { client: 'c1', user: 'alice' };
const text = (v: unknown): JsonText => JSON.stringify(v) as JsonText;

function methods(name: string): RpcMethods {
  return { call: (_caller, method) => Promise.resolve(text({ by: name, method })) };
}

describe('RpcRouter', () => {
  it('routes by the longest prefix, everything else to the fallback', async () => {
    const sent: string[] = [];
    const fallback: RpcHandler = {
      rpc: (_c, method) => Promise.resolve(text({ by: 'proxy', method })),
      send: (_c, data) => {
        sent.push(data);
        return Promise.resolve();
      },
    };
    const router = new RpcRouter(fallback).route('chat.', methods('chat')).route('chat.admin.', methods('admin'));
    expect(JSON.parse((await router.rpc(caller, 'chat.rooms', text(null))) ?? '')).toEqual({ by: 'chat', method: 'chat.rooms' });
    expect(JSON.parse((await router.rpc(caller, 'chat.admin.clear', text(null))) ?? '')).toEqual({ by: 'admin', method: 'chat.admin.clear' });
    expect(JSON.parse((await router.rpc(caller, 'chatter', text(null))) ?? '')).toEqual({ by: 'proxy', method: 'chatter' });
    await router.send(caller, text('hi'));
    expect(sent).toEqual(['"hi"']);
  });

  it('answers METHOD_NOT_FOUND without a fallback, and refuses a prefix without its dot', async () => {
    const router = new RpcRouter().route('inbox.', methods('inbox'));
    await expect(router.rpc(caller, 'other', text(null))).rejects.toSatisfy((err) => err instanceof RelaisError && err.code === 'METHOD_NOT_FOUND');
    expect(() => router.route('chat', methods('chat'))).toThrow(/must end with/);
  });
});
