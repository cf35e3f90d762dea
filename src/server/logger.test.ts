import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { chooseLogFormat, createLoggerAs } from './logger.js';

/** A destination that keeps what a logger wrote, line by line. */
function collector(): { stream: PassThrough; lines: () => string[] } {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
  return { stream, lines: () => chunks.join('').split('\n').filter((l) => l !== '') };
}

describe('log format', () => {
  it('is readable lines on a terminal outside production, JSON everywhere else', () => {
    expect(chooseLogFormat({ isTTY: true, production: false })).toBe('pretty');
    expect(chooseLogFormat({ isTTY: true, production: true })).toBe('json');
    expect(chooseLogFormat({ isTTY: false, production: false })).toBe('json');
    expect(chooseLogFormat({ isTTY: false, production: true })).toBe('json');
  });

  it('pretty: one readable line per entry, secrets still redacted', async () => {
    const out = collector();
    const logger = await createLoggerAs('pretty', 'info', { destination: out.stream });
    logger.info({ token: 'secret-token', port: 8000 }, 'listening');
    logger.debug('below the level');
    logger.child({ component: 'bus' }).warn('bus lost');
    const lines = out.lines();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: listening /);
    expect(lines[0]).toContain('"port":8000');
    expect(lines[0]).not.toContain('secret-token');
    expect(lines[1]).toMatch(/WARN: bus lost .*"component":"bus"/);
    for (const line of lines) expect(() => JSON.parse(line) as unknown).toThrow();
  });

  it('json: one JSON object per line, secrets redacted', async () => {
    const out = collector();
    const logger = await createLoggerAs('json', 'info', { destination: out.stream });
    logger.info({ token: 'secret-token' }, 'listening');
    const [line] = out.lines();
    expect(JSON.parse(line ?? '')).toMatchObject({ level: 30, service: 'relais', msg: 'listening', token: '[redacted]' });
  });
});
