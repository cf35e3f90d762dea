/**
 * PostgreSQL for the store tests: the machine's shared server (127.0.0.1:5432, database
 * `test`, trust auth), where each test works in a fresh schema dropped afterwards; and a
 * private server of the test's own (initdb + pg_ctl on a spare port, never the shared one)
 * that tests stop, start and freeze.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { freePort } from '../../bench/net.js';

export const SHARED_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

/** Why the server at `url` cannot be used, or undefined when it answers within 3 s. */
export async function postgresUnreachable(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    return (err as Error).message || String(err);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A fresh schema name for one test. */
export function newSchemaName(): string {
  return `relais_test_${randomBytes(5).toString('hex')}`;
}

/** Runs one admin statement on the shared server with a schema name quoted by the driver (test code only). */
export async function withAdmin<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function createSchema(url: string, schema: string): Promise<void> {
  await withAdmin(url, (c) => c.query(`CREATE SCHEMA ${c.escapeIdentifier(schema)}`));
}

export async function dropSchemas(url: string, schemas: readonly string[]): Promise<void> {
  if (schemas.length === 0) return;
  await withAdmin(url, async (c) => {
    for (const schema of schemas) await c.query(`DROP SCHEMA IF EXISTS ${c.escapeIdentifier(schema)} CASCADE`);
  });
}

/** The bin folder of the newest PostgreSQL installed from Debian's packages, if any. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

function run(file: string, args: readonly string[], asUser: string | undefined, timeoutMs: number): Promise<string> {
  // initdb and postgres refuse to run as root: as root, run them as the postgres user.
  const [cmd, argv] = asUser === undefined ? [file, [...args]] : ['runuser', ['-u', asUser, '--', file, ...args]];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/**
 * A PostgreSQL server of the test's own, in a temporary data folder on a spare port, with
 * fsync off (a test server). stop() is a fast shutdown; freeze() stops every process of it
 * with SIGSTOP, as a server that no longer answers.
 */
export class PrivatePostgres {
  private frozen: number[] = [];

  private constructor(
    private readonly bin: string,
    private readonly dir: string,
    readonly port: number,
    private readonly user: string | undefined,
  ) {}

  static async create(): Promise<PrivatePostgres> {
    const bin = postgresBinDir();
    if (bin === undefined) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin');
    const dir = mkdtempSync(join(tmpdir(), 'relais-pg-'));
    const user = userInfo().uid === 0 ? 'postgres' : undefined;
    if (user !== undefined) {
      const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
      const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
      chownSync(dir, uid, gid);
    }
    const server = new PrivatePostgres(bin, dir, await freePort(), user);
    await run(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], user, 60_000);
    return server;
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async start(): Promise<void> {
    const options = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
    await run(join(this.bin, 'pg_ctl'), ['-D', join(this.dir, 'data'), '-o', options, '-l', join(this.dir, 'log'), '-w', '-t', '30', 'start'], this.user, 40_000);
  }

  /** Fast shutdown: open sessions are ended, their transactions rolled back. */
  async stop(): Promise<void> {
    this.thaw();
    await run(join(this.bin, 'pg_ctl'), ['-D', join(this.dir, 'data'), '-m', 'fast', '-w', '-t', '30', 'stop'], this.user, 40_000);
  }

  /** Every process of this server, postmaster first. */
  private processes(): number[] {
    const pidFile = join(this.dir, 'data', 'postmaster.pid');
    if (!existsSync(pidFile)) return [];
    const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    const children = readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((pid) => {
        try {
          // Field 4 of /proc/<pid>/stat is the parent pid (after the parenthesised name).
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster;
        } catch {
          return false;
        }
      })
      .map(Number);
    return [postmaster, ...children];
  }

  freeze(): void {
    this.frozen = this.processes();
    for (const pid of this.frozen) process.kill(pid, 'SIGSTOP');
  }

  thaw(): void {
    for (const pid of this.frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Gone already.
      }
    }
    this.frozen = [];
  }

  async dispose(): Promise<void> {
    try {
      if (existsSync(join(this.dir, 'data', 'postmaster.pid'))) await this.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
