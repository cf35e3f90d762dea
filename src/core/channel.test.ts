import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/load.js';
import { ChannelResolver, compileGlob } from './channel.js';
import { RelaisError } from './errors.js';

const { config } = loadConfig({ env: {} });
const channels = new ChannelResolver(config);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof RelaisError ? err.code : 'OTHER';
  }
}

describe('ChannelResolver', () => {
  it('resolves namespaced and plain channels with their options', () => {
    const chat = channels.resolve('chat:equipe-dev');
    expect(chat).toMatchObject({ name: 'chat:equipe-dev', namespace: 'chat', rest: 'equipe-dev' });
    expect(chat.options.persist).toBe(true);
    expect(channels.resolve('batch-123')).toMatchObject({ namespace: '', rest: 'batch-123' });
    expect(channels.resolve('user:alice@example.com').rest).toBe('alice@example.com');
  });

  it('refuses malformed names with CHANNEL_INVALID and unknown namespaces with UNKNOWN_CHANNEL', () => {
    for (const bad of ['', ':abc', 'chat:', 'chat:a b', "chat:x'; DROP TABLE", 'chat:*', 'chat:a?', 'chat:[x]', '@alice', 'x'.repeat(256), 'chat:é']) {
      expect(codeOf(() => channels.resolve(bad)), bad).toBe('CHANNEL_INVALID');
    }
    expect(codeOf(() => channels.resolve(42))).toBe('CHANNEL_INVALID');
    expect(codeOf(() => channels.resolve('nope:room'))).toBe('UNKNOWN_CHANNEL');
  });

  it('maps @user to the personal channel for publishing', () => {
    expect(channels.resolvePublishTarget('@alice').name).toBe('user:alice');
    expect(channels.resolvePublishTarget('chat:a').name).toBe('chat:a');
  });

  it('resolves globs only in namespaces that allow them', () => {
    expect(channels.resolvePattern('chat:*').matcher('chat:room-1')).toBe(true);
    expect(channels.resolvePattern('chat:*').matcher('user:alice')).toBe(false);
    expect(codeOf(() => channels.resolvePattern('user:*'))).toBe('FORBIDDEN');
    expect(codeOf(() => channels.resolvePattern('*:x'))).toBe('CHANNEL_INVALID');
  });
});

describe('compileGlob', () => {
  it('matches * and ? and escapes everything else', () => {
    expect(compileGlob('room:*')('room:a:b')).toBe(true);
    expect(compileGlob('room:?')('room:ab')).toBe(false);
    expect(compileGlob('a.b')('axb')).toBe(false);
    expect(compileGlob('exact')('exact')).toBe(true);
  });
});
