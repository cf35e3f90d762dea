/**
 * `relais serve` writes readable log lines on a terminal (under a pseudo-terminal from
 * util-linux `script`) and JSON lines into a pipe or in production.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI, withTimeout } from './helpers/relais.js';

const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0;

interface Served {
  /** Standard output (the terminal's for `tty`), colours removed, lines up to the listening one. */
  readonly lines: string[];
  readonly port: number;
}

/**
 * Runs `relais serve --port 0` until it logs that it listens, then stops it and checks it is
 * gone. With `tty`, inside `script` so that its standard output is a terminal.
 */
async function serve(tty: boolean, extra: Record<string, string>): Promise<Served> {
  const command = `'${process.execPath}' '${CLI}' serve --port 0`;
  const env = { RELAIS_DATA_DIR: join(mkdtempSync(join(tmpdir(), 'relais-logs-')), 'data'), ...extra };
  const child = tty
    ? spawn('script', ['-qec', command, '/dev/null'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn(process.execPath, [CLI, 'serve', '--port', '0'], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  try {
    await withTimeout(
      (async () => {
        while (!/listening on 127\.0\.0\.1:\d+/.test(output)) {
          if (child.exitCode !== null) throw new Error(`relais exited early:\n${output}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      20_000,
      `relais did not log that it listens; output so far:\n${output}`,
    );
  } finally {
    // `script` passes the SIGTERM on to the server it runs.
    child.kill('SIGTERM');
    await withTimeout(closed, 10_000, 'relais did not stop after SIGTERM').catch((err: unknown) => {
      child.kill('SIGKILL');
      throw err;
    });
  }
  const all = stripVTControlCharacters(output).split(/\r?\n/);
  const upTo = all.findIndex((l) => /listening on 127\.0\.0\.1:\d+/.test(l));
  const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(all[upTo] ?? '')?.[1]);
  const health = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2000) }).then(
    () => 'answered',
    () => 'gone',
  );
  expect(health).toBe('gone');
  return { lines: all.slice(0, upTo + 1).filter((l) => l.trim() !== ''), port };
}

const secrets = { RELAIS_API_KEY: 'cli-logs-test-key', RELAIS_TOKEN_SECRET: 'cli-logs-test-secret-0123456789abcdef' };

describe('relais serve logs', () => {
  it.skipIf(!hasScript)('are readable lines on a terminal outside production', async () => {
    const { lines, port } = await serve(true, {});
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) {
      expect(line.startsWith('{'), line).toBe(false);
      expect(line).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN): /);
    }
    expect(lines.at(-1)).toContain(`INFO: Relais`);
    expect(lines.at(-1)).toContain(`listening on 127.0.0.1:${port}`);
  });

  it.skipIf(!hasScript)('are JSON on a terminal in production', async () => {
    const { lines } = await serve(true, { NODE_ENV: 'production', HOST: '127.0.0.1', ...secrets });
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ service: 'relais' });
  });

  it('are JSON into a pipe', async () => {
    const { lines } = await serve(false, {});
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ service: 'relais' });
  });
});
