/**
 * A node loads bus, store, feature and codec modules only when configured or used: a real
 * Relais process records each package it resolves (a module resolve hook passed through
 * NODE_OPTIONS), and the embedded defaults must not pull the MQTT broker and client of the
 * telemetry feature, protobufjs until a Protobuf client arrives, jose without a JWKS URL,
 * nor the YAML parser without a YAML file.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { sdkClient, waitFor } from './helpers/clients.js';
import { startRelais, type RelaisProcess } from './helpers/relais.js';
import { NEWEST_PROTOBUF_SDK } from './helpers/sdk_versions.js';

/** Files of a resolve hook that appends the package name of every module resolved (imported or required) to `log`. */
function packageTrace(): { nodeOptions: string; packages(): Set<string> } {
  const dir = mkdtempSync(join(tmpdir(), 'relais-trace-'));
  const log = join(dir, 'packages.txt');
  const hooks = join(dir, 'hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  const at = resolved.url.lastIndexOf('/node_modules/');
  if (at >= 0) {
    const parts = resolved.url.slice(at + 14).split('/');
    appendFileSync(${JSON.stringify(log)}, (parts[0].startsWith('@') ? parts[0] + '/' + parts[1] : parts[0]) + '\\n');
  }
  return resolved;
}
`,
  );
  // require() (synchronous loading, as of the YAML parser) resolves outside the hooks: traced apart.
  const register = join(dir, 'register.mjs');
  writeFileSync(
    register,
    `import Module, { register } from 'node:module';
import { appendFileSync } from 'node:fs';
register(${JSON.stringify(pathToFileURL(hooks).href)});
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const file = resolveFilename.apply(this, args);
  const at = file.lastIndexOf('/node_modules/');
  if (at >= 0) {
    const parts = file.slice(at + 14).split('/');
    appendFileSync(${JSON.stringify(log)}, (parts[0].startsWith('@') ? parts[0] + '/' + parts[1] : parts[0]) + '\\n');
  }
  return file;
};
`,
  );
  writeFileSync(log, '');
  return {
    nodeOptions: `--import ${pathToFileURL(register).href}`,
    packages: () => new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean)),
  };
}

const NOT_ON_DEFAULTS = ['aedes', 'mqtt', 'mqtt-packet', 'protobufjs', 'ioredis', 'redis', '@nats-io/transport-node', 'nats', 'pg', 'jose', 'yaml'];

describe('modules loaded on demand', () => {
  let relais: RelaisProcess | undefined;
  let jwks: Server | undefined;
  afterEach(async () => {
    await relais?.stop();
    relais = undefined;
    jwks?.close();
    jwks = undefined;
  });

  it('an embedded node on defaults loads no telemetry, bus or Protobuf module; the first Protobuf client loads its codec', async () => {
    const trace = packageTrace();
    relais = await startRelais({ env: { NODE_OPTIONS: trace.nodeOptions } });
    const atStart = trace.packages();
    // The trace sees the server's own imports: a hook that saw nothing would prove nothing.
    expect(atStart.has('ws')).toBe(true);
    expect(NOT_ON_DEFAULTS.filter((name) => atStart.has(name))).toEqual([]);

    const client = await sdkClient(relais, 'alice', { sdk: NEWEST_PROTOBUF_SDK });
    try {
      const sub = client.subscribe('news');
      await sub.ready(5000);
      await relais.call('publish', { channel: 'news', data: { n: 1 } });
      await waitFor(() => client.pubs('news').length === 1, 5000, 'the publication over Protobuf');
      // The Protobuf build hands payloads over as the bytes of the JSON document.
      expect(JSON.parse(new TextDecoder().decode(client.pubs('news')[0]?.data as Uint8Array))).toEqual({ n: 1 });
    } finally {
      client.close();
    }
    expect(trace.packages().has('protobufjs')).toBe(true);
  });

  it('a node with telemetry enabled loads its MQTT modules', async () => {
    const trace = packageTrace();
    relais = await startRelais({ env: { NODE_OPTIONS: trace.nodeOptions }, config: { telemetry: { enabled: true, mqtt: { port: 0 } } } });
    expect(trace.packages().has('aedes')).toBe(true);
  });

  it('a node with a JWKS URL loads jose with the first token signed by a key of the set; a YAML config file loads the YAML parser', async () => {
    const keys = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks?.listen(0, '127.0.0.1', resolve));
    const dir = mkdtempSync(join(tmpdir(), 'relais-yaml-'));
    const configFile = join(dir, 'relais.yaml');
    writeFileSync(configFile, `token:\n  jwks_url: http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json\n`);
    const trace = packageTrace();
    relais = await startRelais({ env: { NODE_OPTIONS: trace.nodeOptions, RELAIS_CONFIG: configFile } });
    const atStart = trace.packages();
    expect(atStart.has('yaml')).toBe(true);
    expect(atStart.has('jose')).toBe(false);

    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('erin').setExpirationTime('1h').sign(keys.privateKey);
    const client = await sdkClient(relais, 'erin', { token });
    try {
      await waitFor(() => String(client.centrifuge.state) === 'connected', 5000, 'a connection with a JWKS-signed token');
    } finally {
      client.close();
    }
    expect(trace.packages().has('jose')).toBe(true);
  });
});
