/**
 * The terminal side of `relais chat`: lines typed by the user, one at a time, and output that
 * never garbles what is being typed. On a TTY a line printed while the user types clears the
 * prompt line, prints, and redraws the prompt with the half-typed input; with piped input there
 * is no prompt and no echo, so the output is exactly the chat lines (what the tests read).
 */
import { clearLine, createInterface, cursorTo, type Interface } from 'node:readline';

export class ChatScreen {
  readonly interactive: boolean;
  private readonly rl: Interface;
  private readonly queue: string[] = [];
  private ended = false;
  private wake: (() => void) | undefined;
  private promptShown = false;

  constructor(
    private readonly input: NodeJS.ReadStream,
    private readonly output: NodeJS.WriteStream,
  ) {
    this.interactive = input.isTTY === true && output.isTTY === true;
    this.rl = createInterface({ input, output, terminal: this.interactive, historySize: this.interactive ? 100 : 0 });
    this.rl.on('line', (line) => {
      this.promptShown = false;
      this.queue.push(line);
      this.wake?.();
    });
    this.rl.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  /** The next line of input, in order; undefined at the end of input (Ctrl+D, or the pipe closed). */
  async nextLine(): Promise<string | undefined> {
    for (;;) {
      const line = this.queue.shift();
      if (line !== undefined) return line;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /** Ctrl+C on a TTY (readline takes it from the process). */
  onInterrupt(handler: () => void): void {
    this.rl.on('SIGINT', handler);
  }

  /** Prints one line above the prompt. */
  print(line: string): void {
    if (!this.interactive) {
      this.output.write(`${line}\n`);
      return;
    }
    if (this.promptShown) {
      cursorTo(this.output, 0);
      clearLine(this.output, 0);
    }
    this.output.write(`${line}\n`);
    if (this.promptShown) this.rl.prompt(true);
  }

  /** Shows the prompt (TTY only); `text` becomes the prompt from now on. */
  prompt(text: string): void {
    if (!this.interactive) return;
    this.rl.setPrompt(text);
    this.rl.prompt(true);
    this.promptShown = true;
  }

  close(): void {
    if (this.interactive && this.promptShown) this.output.write('\n');
    this.promptShown = false;
    this.rl.close();
  }
}
