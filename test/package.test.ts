/**
 * The package as a user gets it: `npm pack` of this checkout (its dist, which `npm test`
 * builds first), installed into a fresh project in a temporary folder (dependencies from the
 * npm cache or registry), then imported by name from an ESM script that starts a server and
 * from a TypeScript file that uses its types.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/relais.js';

interface Ran {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end; rejects on a non-zero exit or after `timeoutMs` (killing it). */
function run(command: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<Ran> {
  // Nothing of the npm run that started the tests (npm_config_*, npm_package_*) leaks into these commands.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')}: not done within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}\n${stdout}\n${stderr}`));
    });
  });
}

/** What a user writes: start a server from code, check it, publish through the HTTP API, stop it. */
const ESM_SCRIPT = `
import { ConfigError, RelaisError, startRelais, toJsonText, VERSION } from 'relais';
import { chatChannel, mintToken } from 'relais/client';

setTimeout(() => {
  console.error('check.mjs: not done within 20 s');
  process.exit(1);
}, 20_000).unref();

const apiKey = 'package-test-api-key';
const server = await startRelais({
  port: 0,
  log_level: 'silent',
  api_key: apiKey,
  token: { hmac_secret: 'package-test-token-secret-0123456789' },
});
const base = 'http://127.0.0.1:' + server.port;
const api = async (method, params) => {
  const response = await fetch(base + '/api/' + method, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
    body: JSON.stringify(params),
    signal: AbortSignal.timeout(5000),
  });
  return response.json();
};
const health = await (await fetch(base + '/healthz', { signal: AbortSignal.timeout(5000) })).json();
const channel = chatChannel('lobby');
const published = await api('publish', { channel, data: { text: 'hello from the package' } });
const history = await api('history', { channel, limit: 10 });
const token = await mintToken('package-test-token-secret-0123456789', { user: 'alice' });
await server.close();

let configProblems = [];
try {
  await startRelais({ port: -1, log_level: 'silent' });
} catch (err) {
  if (err instanceof ConfigError) configProblems = err.problems;
}
console.log(JSON.stringify({
  version: VERSION,
  health,
  offset: published.result?.offset,
  history: history.result?.publications?.map((p) => p.data),
  tokenParts: token.split('.').length,
  configProblems,
  relaisError: new RelaisError('FORBIDDEN').httpStatus,
  json: toJsonText({ a: 1 }),
}));
`;

/** The types a TypeScript user reaches for, checked against the installed declarations. */
const TS_FILE = `
import { startRelais, type Broker, type PresenceManager, type RelaisConfigInput, type RunningServer, type StreamPosition } from 'relais';

const config: RelaisConfigInput = { port: 0, namespaces: { chat: { history_size: 100, history_ttl: '1h' } } };
export async function main(): Promise<StreamPosition> {
  const server: RunningServer = await startRelais(config, { production: false });
  const broker: Broker = server.node.broker;
  const presence: PresenceManager = server.node.presence;
  await presence.stats('chat:lobby');
  const position = (await broker.history('chat:lobby', { limit: 0 })).position;
  await server.close();
  return position;
}
`;

describe('the npm package', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'relais-package-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('installs from its tarball; `relais` and `relais/client` import, start a server and type-check', async () => {
    expect(existsSync(join(REPO_ROOT, 'dist/src/index.js')), 'dist is built (npm run build)').toBe(true);
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], REPO_ROOT, 60_000);
    const [{ filename, files }] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    const paths = files.map((f) => f.path);
    expect(paths).toContain('dist/src/index.js');
    expect(paths).toContain('dist/src/index.d.ts');
    expect(paths).toContain('dist/src/cli/main.js');
    expect(paths.filter((p) => /\.test\.|\.contract\.|\.suite\.|^test\/|^src\//.test(p))).toEqual([]);

    const project = join(tmp, 'app');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'relais-package-check', private: true, type: 'module' }));
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(tmp, filename)], project, 150_000);

    writeFileSync(join(project, 'check.mjs'), ESM_SCRIPT);
    const checked = await run(process.execPath, ['check.mjs'], project, 30_000);
    const result = JSON.parse(checked.stdout.trim().split('\n').at(-1) ?? '') as unknown;
    expect(result).toEqual({
      version: expect.any(String) as unknown,
      health: { status: 'ok' },
      offset: 1,
      history: [{ text: 'hello from the package' }],
      tokenParts: 3,
      configProblems: ['port: Too small: expected number to be >=0'],
      relaisError: 403,
      json: '{"a":1}',
    });

    writeFileSync(join(project, 'check.ts'), TS_FILE);
    const tsc = join(REPO_ROOT, 'node_modules/typescript/bin/tsc');
    const typeRoots = join(REPO_ROOT, 'node_modules/@types');
    await run(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--skipLibCheck', '--typeRoots', typeRoots, '--types', 'node', 'check.ts'],
      project,
      60_000,
    );
  }, 300_000);
});
