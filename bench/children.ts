import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isChildMessage, type ChildMessage } from './load/messages.js';

/** Repository root: children run from here so that `--import tsx` resolves. */
export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const TAIL_BYTES = 4096;
const KILL_GRACE_MS = 2000;

/** Raises the soft open-files limit to the hard one, then becomes the program. */
const WRAPPER = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"';
/** The same, run by `taskset` on the CPUs in BENCH_PIN_CPUS (the pid stays the program's). */
const PINNED_WRAPPER = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec taskset -c "$BENCH_PIN_CPUS" "$0" "$@"';

const live = new Set<Child>();

type Waiter = { readonly type: string; readonly resolve: (m: ChildMessage) => void; readonly reject: (e: Error) => void; readonly timer: NodeJS.Timeout };

export interface SpawnOptions {
  readonly name: string;
  /** Arguments after `node`: a script and its arguments, possibly with node flags first. */
  readonly nodeArgs: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Open an IPC channel (bench processes); Relais runs without one. */
  readonly ipc: boolean;
  /** CPUs to run on, as `taskset -c` reads them ("0", "1-3", "0,2"); anywhere when absent. */
  readonly cpus?: string | undefined;
}

/** A process started by the harness, killed at the end whatever happens. */
export class Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  private tail = '';
  private readonly inbox: ChildMessage[] = [];
  private readonly waiters: Waiter[] = [];
  private exitInfo: string | null = null;
  /** A fatal report from the child: every later wait fails with it at once. */
  private fatal: Error | null = null;
  readonly exited: Promise<void>;

  constructor(options: SpawnOptions) {
    this.name = options.name;
    const pinned = options.cpus !== undefined;
    this.proc = spawn('/bin/sh', ['-c', pinned ? PINNED_WRAPPER : WRAPPER, process.execPath, ...options.nodeArgs], {
      cwd: repoRoot,
      env: { ...process.env, ...options.env, ...(pinned ? { BENCH_PIN_CPUS: options.cpus } : {}) },
      stdio: ['ignore', 'pipe', 'pipe', ...(options.ipc ? (['ipc'] as const) : [])],
    });
    if (this.proc.pid === undefined) throw new Error(`${this.name}: could not start`);
    this.pid = this.proc.pid;
    live.add(this);
    const keep = (chunk: Buffer): void => {
      this.tail = (this.tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
      if (process.env['BENCH_VERBOSE']) process.stderr.write(`[${this.name}] ${chunk.toString('utf8')}`);
    };
    this.proc.stdout?.on('data', keep);
    this.proc.stderr?.on('data', keep);
    this.proc.on('message', (raw: unknown) => {
      if (!isChildMessage(raw)) return;
      if (raw.type === 'fatal') {
        this.fatal = new Error(`${this.name}: ${raw.message}`);
        this.failAll(this.fatal);
        return;
      }
      const index = this.waiters.findIndex((w) => w.type === raw.type);
      const waiter = index >= 0 ? this.waiters.splice(index, 1)[0] : undefined;
      if (waiter) {
        clearTimeout(waiter.timer);
        waiter.resolve(raw);
      } else {
        this.inbox.push(raw);
      }
    });
    this.proc.on('error', (err) => {
      this.fatal = new Error(`${this.name}: ${err.message}`);
      this.failAll(this.fatal);
    });
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exitInfo = `${this.name} exited (${signal ?? `code ${code}`})${this.tail ? `: ${this.tail.trim().slice(-1500)}` : ''}`;
        live.delete(this);
        this.failAll(new Error(this.exitInfo));
        resolve();
      });
    });
  }

  /** Why the process is gone, or null while it runs. */
  gone(): string | null {
    return this.exitInfo;
  }

  /** The last few KB of its output. */
  output(): string {
    return this.tail;
  }

  send(message: object): void {
    if (this.exitInfo !== null) throw new Error(this.exitInfo);
    this.proc.send(message);
  }

  /** The next message of this type (an earlier unread one first); rejects on timeout, exit or fatal. */
  next<K extends ChildMessage['type']>(type: K, timeoutMs: number): Promise<Extract<ChildMessage, { type: K }>> {
    const index = this.inbox.findIndex((m) => m.type === type);
    const queued = index >= 0 ? this.inbox.splice(index, 1)[0] : undefined;
    if (queued) return Promise.resolve(queued as Extract<ChildMessage, { type: K }>);
    if (this.fatal !== null) return Promise.reject(this.fatal);
    if (this.exitInfo !== null) return Promise.reject(new Error(this.exitInfo));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = { type, resolve: (m) => resolve(m as Extract<ChildMessage, { type: K }>), reject, timer };
      this.waiters.push(waiter);
    });
  }

  private failAll(error: Error): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  /** SIGTERM, then SIGKILL if it is still there after a grace period. */
  async kill(): Promise<void> {
    if (this.exitInfo !== null) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), KILL_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Extra node flags for the bench's own processes, e.g. BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
export function extraNodeFlags(): string[] {
  return (process.env['BENCH_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');
}

/**
 * Extra node flags for the servers under test only, e.g.
 * BENCH_SERVER_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof": a profile of the server
 * alone, its load processes left unprofiled (they share the cores).
 */
export function serverNodeFlags(): string[] {
  return [...extraNodeFlags(), ...(process.env['BENCH_SERVER_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '')];
}

/** Starts a bench TypeScript process (run through tsx) with an IPC channel, on `cpus` when given. */
export function spawnBenchProcess(name: string, script: string, env: Readonly<Record<string, string>> = {}, cpus?: string): Child {
  return new Child({ name, nodeArgs: [...extraNodeFlags(), '--import', 'tsx', script], env, ipc: true, cpus });
}

/** Kills every process the harness started and still runs. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((child) => child.kill()));
}

/** Last resort on exit: no time left for grace. */
function killAllNow(): void {
  for (const child of live) child.proc.kill('SIGKILL');
}

let installed = false;

/** Kills the children on Ctrl-C, SIGTERM and on any exit of this process. */
export function installExitHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: stopping ${live.size} child process(es)\n`);
      killAll().then(
        () => process.exit(130),
        () => process.exit(130),
      );
    });
  }
}
