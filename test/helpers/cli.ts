/**
 * Runs `relais` CLI commands (`chat`, `subscribe`, `publish`) as real child processes against a
 * test server, driven through stdin and read line by line from stdout and stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CLI, withTimeout, type RelaisProcess } from './relais.js';

/** Environment of a CLI child: the test server's secret and key, nothing from the developer's shell. */
export function cliEnv(relais: RelaisProcess, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '',
    RELAIS_TOKEN_SECRET: relais.secret,
    RELAIS_API_KEY: relais.apiKey,
    RELAIS_URL: relais.httpUrl,
    ...extra,
  };
}

export class CliProcess {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private closed = false;

  constructor(
    readonly name: string,
    args: readonly string[],
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    // 'close' comes after the exit and after stdout and stderr have ended: every line is in.
    this.exited = new Promise((resolve) =>
      this.child.once('close', (code, signal) => {
        this.closed = true;
        resolve({ code, signal });
      }),
    );
    if (this.child.stdout) createInterface({ input: this.child.stdout }).on('line', (line) => this.stdout.push(line));
    if (this.child.stderr) createInterface({ input: this.child.stderr }).on('line', (line) => this.stderr.push(line));
    this.child.stdin?.on('error', () => undefined); // writing to a process that has just died
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Writes lines to stdin, in one write. */
  send(...lines: string[]): void {
    this.child.stdin?.write(lines.map((l) => `${l}\n`).join(''));
  }

  /** Closes stdin: the end of input. */
  endInput(): void {
    this.child.stdin?.end();
  }

  /** Resolves with the first stdout line matching `match` (a line seen earlier counts); rejects after `timeoutMs`. */
  waitFor(match: string | RegExp, timeoutMs = 20_000): Promise<string> {
    return this.waitIn(this.stdout, 'stdout', match, timeoutMs);
  }

  waitForStderr(match: string | RegExp, timeoutMs = 20_000): Promise<string> {
    return this.waitIn(this.stderr, 'stderr', match, timeoutMs);
  }

  /** Resolves once at least `count` stdout lines satisfy `predicate`. */
  async waitForCount(predicate: (line: string) => boolean, count: number, timeoutMs = 20_000, what = `${count} lines`): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.stdout.filter(predicate);
      if (found.length >= count) return found;
      if (Date.now() > deadline) throw new Error(`${this.name}: timed out waiting for ${what}; got:\n${this.transcript()}`);
      if (this.closed) throw new Error(`${this.name}: exited while waiting for ${what}:\n${this.transcript()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private async waitIn(lines: string[], stream: string, match: string | RegExp, timeoutMs: number): Promise<string> {
    const test = (line: string): boolean => (typeof match === 'string' ? line === match : match.test(line));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = lines.find(test);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`${this.name}: timed out waiting for ${stream} ${String(match)}; got:\n${this.transcript()}`);
      if (this.closed) throw new Error(`${this.name}: exited while waiting for ${stream} ${String(match)}:\n${this.transcript()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  transcript(): string {
    return [...this.stdout.map((l) => `  out| ${l}`), ...this.stderr.map((l) => `  err| ${l}`)].join('\n');
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Waits for the exit, killing the process if it does not come within `timeoutMs`. */
  async waitExit(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    try {
      return await withTimeout(this.exited, timeoutMs, `${this.name} did not exit`);
    } catch (err) {
      this.signal('SIGKILL');
      throw err;
    }
  }

  /** Ends the process for good (afterEach): SIGKILL, then wait for it. */
  async kill(): Promise<void> {
    this.signal('SIGKILL');
    await withTimeout(this.exited, 5_000, `${this.name} did not die after SIGKILL`).catch(() => undefined);
  }
}

/** Runs a command to completion and returns its exit code and output. */
export async function runCli(
  args: readonly string[],
  env: Record<string, string>,
  timeoutMs = 20_000,
): Promise<{ code: number | null; stdout: string[]; stderr: string[] }> {
  const cli = new CliProcess(`relais ${args[0] ?? ''}`, args, env);
  cli.endInput();
  const { code } = await cli.waitExit(timeoutMs);
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

