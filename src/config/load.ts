import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { z } from 'zod';
import { relaisConfig, type NamespaceOptions, type RelaisConfig, type RelaisConfigInput } from './schema.js';
import { keepsHistory } from '../core/channel.js';
import { embeddedDefaults, DEV_API_KEY, DEV_TOKEN_SECRET, REPLACEABLE_NAMESPACES } from './defaults.js';

/**
 * The YAML parser, loaded with the first YAML file: a node configured by JSON or the
 * environment alone does not carry it. Through require because loading stays synchronous.
 */
function parseYaml(text: string): unknown {
  const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml.parse(text);
}

/** Every problem found in a configuration, reported at once. */
export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`Relais cannot start, the configuration has ${problems.length} problem(s):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export interface LoadedConfig {
  readonly config: Readonly<RelaisConfig>;
  /** Things worth a log line at start-up (development secrets in use, ...). */
  readonly warnings: readonly string[];
  readonly production: boolean;
}

export interface ConfigSources {
  /** Environment variables (only server/ and cli/ pass process.env). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Path of a JSON or YAML file; RELAIS_CONFIG in env names one too. */
  readonly file?: string;
  /** Values from command-line flags: the last word. */
  readonly overrides?: RelaisConfigInput;
}

/** `millis`: a whole number is milliseconds (seed 002's DB_* timeouts); a duration string ("30s") works too. */
type EnvBinding = { readonly name: string; readonly path: readonly string[]; readonly kind: 'string' | 'int' | 'bool' | 'list' | 'millis' };

/** Environment variables, with the names our users already use. */
const envBindings: readonly EnvBinding[] = [
  { name: 'PORT', path: ['port'], kind: 'int' },
  { name: 'HOST', path: ['host'], kind: 'string' },
  { name: 'LOG_LEVEL', path: ['log_level'], kind: 'string' },
  { name: 'RELAIS_NODE_NAME', path: ['node_name'], kind: 'string' },
  { name: 'RELAIS_API_KEY', path: ['api_key'], kind: 'string' },
  { name: 'RELAIS_TOKEN_SECRET', path: ['token', 'hmac_secret'], kind: 'string' },
  { name: 'RELAIS_TOKEN_PUBLIC_KEY', path: ['token', 'public_key'], kind: 'string' },
  { name: 'RELAIS_TOKEN_JWKS_URL', path: ['token', 'jwks_url'], kind: 'string' },
  { name: 'RELAIS_TOKEN_AUDIENCE', path: ['token', 'audience'], kind: 'string' },
  { name: 'RELAIS_TOKEN_ISSUER', path: ['token', 'issuer'], kind: 'string' },
  { name: 'RELAIS_ALLOW_ANONYMOUS', path: ['allow_anonymous'], kind: 'bool' },
  { name: 'CLIENT_URL', path: ['allowed_origins'], kind: 'list' },
  { name: 'REDIS_URL', path: ['redis_url'], kind: 'string' },
  { name: 'REDIS_REPLICA_ACKS', path: ['redis_replica_acks'], kind: 'int' },
  { name: 'REDIS_REPLICA_ACK_TIMEOUT', path: ['redis_replica_ack_timeout'], kind: 'millis' },
  { name: 'NATS_URL', path: ['nats_url'], kind: 'string' },
  { name: 'RELAIS_BUS_PREFIX', path: ['bus_prefix'], kind: 'string' },
  { name: 'DATABASE_URL', path: ['database', 'url'], kind: 'string' },
  { name: 'RELAIS_DB_SCHEMA', path: ['database', 'schema'], kind: 'string' },
  { name: 'DB_POOL_MAX', path: ['database', 'pool_max'], kind: 'int' },
  { name: 'DB_POOL_MIN', path: ['database', 'pool_min'], kind: 'int' },
  { name: 'DB_POOL_IDLE_TIMEOUT', path: ['database', 'pool_idle_timeout'], kind: 'millis' },
  { name: 'DB_POOL_CONNECTION_TIMEOUT', path: ['database', 'pool_connection_timeout'], kind: 'millis' },
  { name: 'DB_QUERY_TIMEOUT', path: ['database', 'query_timeout'], kind: 'millis' },
  { name: 'DEBUG_DB_POOL', path: ['database', 'debug_pool'], kind: 'bool' },
  { name: 'RELAIS_DATA_DIR', path: ['data_dir'], kind: 'string' },
  { name: 'RELAIS_WS_COMPRESSION', path: ['websocket', 'compression'], kind: 'bool' },
  { name: 'RELAIS_CHAT_AWAY_AFTER', path: ['chat', 'away_after'], kind: 'string' },
  { name: 'RELAIS_WEBHOOK_URL', path: ['webhooks', 'url'], kind: 'string' },
  { name: 'RELAIS_WEBHOOK_SECRET', path: ['webhooks', 'secret'], kind: 'string' },
  { name: 'RELAIS_PROXY_CONNECT_URL', path: ['proxy', 'connect_url'], kind: 'string' },
  { name: 'RELAIS_PROXY_REFRESH_URL', path: ['proxy', 'refresh_url'], kind: 'string' },
  { name: 'RELAIS_PROXY_SUBSCRIBE_URL', path: ['proxy', 'subscribe_url'], kind: 'string' },
  { name: 'RELAIS_PROXY_PUBLISH_URL', path: ['proxy', 'publish_url'], kind: 'string' },
  { name: 'RELAIS_PROXY_SUB_REFRESH_URL', path: ['proxy', 'sub_refresh_url'], kind: 'string' },
  { name: 'RELAIS_PROXY_RPC_URL', path: ['proxy', 'rpc_url'], kind: 'string' },
  { name: 'RELAIS_PROXY_TIMEOUT', path: ['proxy', 'timeout'], kind: 'string' },
  { name: 'TELEMETRY', path: ['telemetry', 'enabled'], kind: 'bool' },
  { name: 'TELEMETRY_WINDOW', path: ['telemetry', 'window'], kind: 'millis' },
  { name: 'MQTT_BROKER_URL', path: ['telemetry', 'mqtt', 'broker_url'], kind: 'string' },
  { name: 'MQTT_PORT', path: ['telemetry', 'mqtt', 'port'], kind: 'int' },
];

type Plain = Record<string, unknown>;

function isPlainObject(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge of plain objects; arrays and scalars of `over` replace those of `base`. */
export function mergeConfig(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Plain = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = mergeConfig(base[key], value);
  return out;
}

function setPath(target: Plain, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node = isPlainObject(next) ? next : (node[key] = {});
  }
  node[path[path.length - 1] ?? ''] = value;
}

function readEnv(env: ConfigSources['env'], problems: string[]): { input: Plain; origin: Map<string, string> } {
  const input: Plain = {};
  const origin = new Map<string, string>();
  for (const binding of envBindings) {
    const raw = env[binding.name];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (binding.kind === 'int') {
      if (!/^\d+$/.test(raw.trim())) {
        problems.push(`${binding.name}: expected a whole number, got "${raw}"`);
        continue;
      }
      value = Number(raw.trim());
    } else if (binding.kind === 'bool') {
      const v = raw.trim().toLowerCase();
      if (!['1', 'true', 'yes', '0', 'false', 'no'].includes(v)) {
        problems.push(`${binding.name}: expected true or false, got "${raw}"`);
        continue;
      }
      value = ['1', 'true', 'yes'].includes(v);
    } else if (binding.kind === 'millis') {
      value = /^\d+$/.test(raw.trim()) ? `${raw.trim()}ms` : raw.trim();
    } else if (binding.kind === 'list') {
      value = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    } else if (binding.name === 'RELAIS_TOKEN_PUBLIC_KEY' && !raw.includes('-----BEGIN')) {
      try {
        value = readFileSync(raw, 'utf8');
      } catch (err) {
        problems.push(`${binding.name}: neither a PEM key nor a readable file (${(err as Error).message})`);
        continue;
      }
    }
    setPath(input, binding.path, value);
    origin.set(binding.path.join('.'), binding.name);
  }
  return { input, origin };
}

function readFile(path: string, problems: string[]): Plain {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`config file ${path}: cannot be read (${(err as Error).message})`);
    return {};
  }
  try {
    const parsed: unknown = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    if (parsed === null || parsed === undefined) return {};
    if (!isPlainObject(parsed)) {
      problems.push(`config file ${path}: expected an object at the top level`);
      return {};
    }
    return parsed;
  } catch (err) {
    problems.push(`config file ${path}: not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'} (${(err as Error).message})`);
    return {};
  }
}

function describeIssue(issue: z.core.$ZodIssue, origin: Map<string, string>): string {
  const path = issue.path.map(String).join('.');
  const from = origin.get(path);
  const where = from ? `${from} (${path})` : path || 'configuration';
  return `${where}: ${issue.message}`;
}

/** Checks that concern several fields at once; returns plain-words problems. */
/** A namespace's proxy hooks each need their proxy: the named one, or proxy.<hook>_url. */
function namespaceProxyProblems(config: RelaisConfig, where: string, ns: NamespaceOptions): string[] {
  const problems: string[] = [];
  const hooks = [
    { on: ns.proxy_subscribe, flag: 'proxy_subscribe', nameKey: 'subscribe_proxy_name', name: ns.subscribe_proxy_name, url: config.proxy.subscribe_url, urlKey: 'subscribe_url' },
    { on: ns.proxy_publish, flag: 'proxy_publish', nameKey: 'publish_proxy_name', name: ns.publish_proxy_name, url: config.proxy.publish_url, urlKey: 'publish_url' },
    { on: ns.proxy_sub_refresh, flag: 'proxy_sub_refresh', nameKey: 'sub_refresh_proxy_name', name: ns.sub_refresh_proxy_name, url: config.proxy.sub_refresh_url, urlKey: 'sub_refresh_url' },
  ];
  for (const hook of hooks) {
    if (hook.name !== undefined && !hook.on) problems.push(`${where}: ${hook.nameKey} needs ${hook.flag}: true`);
    if (!hook.on) continue;
    if (hook.name === undefined || hook.name === 'default') {
      if (!hook.url) problems.push(`${where}: ${hook.flag} needs proxy.${hook.urlKey}`);
    } else if (!config.proxies.some((p) => p.name === hook.name)) {
      problems.push(`${where}: ${hook.nameKey} "${hook.name}" is not a proxy of \`proxies\` (${config.proxies.map((p) => p.name).join(', ') || 'none defined'})`);
    }
  }
  return problems;
}

function crossCheck(config: RelaisConfig): string[] {
  const problems: string[] = [];
  const all = { '(default namespace)': config.default_namespace, ...config.namespaces };
  for (const [name, ns] of Object.entries(all)) {
    const where = name === '(default namespace)' ? 'default_namespace' : `namespaces.${name}`;
    if ((ns.history_size > 0) !== (ns.history_ttl > 0)) {
      problems.push(`${where}: history needs both history_size and history_ttl above 0 (got ${ns.history_size} and ${ns.history_ttl} ms)`);
    }
    if (ns.join_leave && !ns.presence) problems.push(`${where}: join_leave needs presence: true`);
    if (ns.allow_presence && !ns.presence) problems.push(`${where}: allow_presence needs presence: true`);
    if (ns.allow_history && !keepsHistory(ns)) problems.push(`${where}: allow_history needs history_size and history_ttl, or persist`);
    if (ns.history_on_join > 0 && !keepsHistory(ns)) problems.push(`${where}: history_on_join needs history_size and history_ttl, or persist`);
    if (ns.force_recovery && !keepsHistory(ns)) problems.push(`${where}: force_recovery needs history_size and history_ttl, or persist`);
    if (ns.force_recovery_mode === 'cache' && !keepsHistory(ns)) {
      problems.push(`${where}: force_recovery_mode cache keeps the latest publication in history: it needs history_size (1 is enough) and history_ttl, or persist`);
    }
    if ((ns.persist_ttl > 0 || ns.persist_size > 0) && !ns.persist) problems.push(`${where}: persist_ttl and persist_size need persist: true`);
    problems.push(...namespaceProxyProblems(config, where, ns));
  }
  const names = new Set<string>();
  for (const proxy of config.proxies) {
    if (proxy.name === 'default') problems.push('proxies: the name "default" is taken by proxy.*_url');
    else if (names.has(proxy.name)) problems.push(`proxies: the name "${proxy.name}" is used twice`);
    names.add(proxy.name);
  }
  const db = config.database;
  if (db.pool_min > db.pool_max) {
    problems.push(`DB_POOL_MIN (database.pool_min) must not exceed DB_POOL_MAX (database.pool_max): got ${db.pool_min} and ${db.pool_max}`);
  }
  // 0 would mean "no limit" to the driver: a call could then wait forever.
  if (db.pool_connection_timeout <= 0) problems.push('DB_POOL_CONNECTION_TIMEOUT (database.pool_connection_timeout) must be above 0');
  if (db.query_timeout <= 0) problems.push('DB_QUERY_TIMEOUT (database.query_timeout) must be above 0');
  if (config.telemetry.window < 50) problems.push(`telemetry.window must be at least 50ms (got ${config.telemetry.window} ms)`);
  if (config.redis_url && config.nats_url) problems.push('REDIS_URL and NATS_URL are both set: choose one message bus');
  if (config.client.pong_timeout >= config.client.ping_interval && config.client.ping_interval > 0) {
    problems.push('client.pong_timeout must be shorter than client.ping_interval');
  }
  return problems;
}

/**
 * A namespace of the chat's embedded defaults (`room`, `dm`, `status`) that the configuration
 * defines itself is taken as written, not merged over the default: a deployment that had its
 * own `room` namespace before the chat came keeps it as it was (the chat then leaves rooms
 * off and says so at start-up).
 */
function keepOwnNamespaces(merged: unknown, own: unknown): void {
  if (!isPlainObject(merged) || !isPlainObject(own) || !isPlainObject(merged['namespaces']) || !isPlainObject(own['namespaces'])) return;
  const target = merged['namespaces'];
  for (const name of REPLACEABLE_NAMESPACES) {
    const mine = own['namespaces'][name];
    if (mine !== undefined) target[name] = mine;
  }
}

/**
 * Builds the configuration: embedded defaults < file < environment < flags, validated
 * once and frozen. Throws ConfigError listing every problem.
 */
export function loadConfig(sources: ConfigSources): LoadedConfig {
  const problems: string[] = [];
  const warnings: string[] = [];
  const production = sources.env['NODE_ENV'] === 'production';
  const filePath = sources.file ?? sources.env['RELAIS_CONFIG'];
  const fileInput = filePath ? readFile(filePath, problems) : {};
  const { input: envInput, origin } = readEnv(sources.env, problems);

  let merged = mergeConfig(embeddedDefaults(production), fileInput);
  merged = mergeConfig(merged, envInput);
  merged = mergeConfig(merged, sources.overrides ?? {});
  keepOwnNamespaces(merged, mergeConfig(mergeConfig(fileInput, envInput), sources.overrides ?? {}));

  const result = relaisConfig.safeParse(merged);
  if (!result.success) {
    problems.push(...result.error.issues.map((issue) => describeIssue(issue, origin)));
    throw new ConfigError(problems);
  }
  const config = result.data;
  problems.push(...crossCheck(config));
  sharedStoreCheck(config, [fileInput, envInput, sources.overrides ?? {}], problems, warnings);

  const hasTokenKey = Boolean(config.token.hmac_secret ?? config.token.public_key ?? config.token.jwks_url);
  if (production) {
    if (!config.api_key) problems.push('RELAIS_API_KEY (api_key) is required when NODE_ENV=production');
    if (!hasTokenKey && !config.allow_anonymous) {
      problems.push('a token key is required when NODE_ENV=production: set RELAIS_TOKEN_SECRET, RELAIS_TOKEN_PUBLIC_KEY or RELAIS_TOKEN_JWKS_URL');
    }
  } else {
    if (!config.api_key) {
      config.api_key = DEV_API_KEY;
      warnings.push(`no RELAIS_API_KEY set: the server API accepts the development key "${DEV_API_KEY}"; set NODE_ENV=production to require real secrets`);
    }
    if (!hasTokenKey) {
      config.token.hmac_secret = DEV_TOKEN_SECRET;
      warnings.push('no RELAIS_TOKEN_SECRET set: connection tokens are checked with the development secret (`relais token` mints them)');
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { config: deepFreeze(config), warnings, production };
}

/** Whether any of the sources sets `path` (a namespace's `persist`, say). */
function setIn(sources: readonly Plain[], path: readonly string[]): boolean {
  return sources.some((source) => {
    let node: unknown = source;
    for (const key of path) {
      if (!isPlainObject(node)) return false;
      node = node[key];
    }
    return node !== undefined;
  });
}

/**
 * Several instances over a bus share one store or none: each instance's SQLite file would
 * sequence a persistent channel on its own. A namespace made persistent by the embedded
 * defaults keeps its history on the bus instead (with a warning); one the user made
 * persistent needs DATABASE_URL.
 */
function sharedStoreCheck(config: RelaisConfig, sources: readonly Plain[], problems: string[], warnings: string[]): void {
  if ((!config.redis_url && !config.nats_url) || config.database.url) return;
  const bus = config.redis_url ? 'REDIS_URL' : 'NATS_URL';
  for (const [name, ns] of Object.entries(config.namespaces)) {
    if (!ns.persist) continue;
    if (setIn(sources, ['namespaces', name, 'persist'])) {
      problems.push(`namespaces.${name}: persist with ${bus} needs DATABASE_URL (PostgreSQL): instances over a bus cannot share an SQLite file`);
      continue;
    }
    Object.assign(ns, { persist: false, history_size: ns.history_size || 100, history_ttl: ns.history_ttl || 86_400_000 });
    warnings.push(`namespace ${name}: ${bus} is set without DATABASE_URL, so its history is kept on the bus (100 messages, 24 h), not in a durable store; set DATABASE_URL to keep it`);
  }
  if (config.default_namespace.persist) problems.push(`default_namespace: persist with ${bus} needs DATABASE_URL (PostgreSQL): instances over a bus cannot share an SQLite file`);
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
