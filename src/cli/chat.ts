import { parseArgs } from 'node:util';
import type { Centrifuge, PublicationContext, Subscription } from 'centrifuge';
import { chatChannel, subscribeTyped, type ChatMessage } from '../../client/index.js';
import { ChatScreen } from './chat_screen.js';
import { HELP, formatMessage, formatPresence, messageText, parseInput, senderOf, type ChatInput } from './chat_format.js';
import { cliCentrifuge, describeError, flushAndExit, randomId, websocketUrl } from './endpoints.js';

const USAGE = 'usage: relais chat [--user <id> | --token <jwt>] [--room <name>] [--url <server url>]';
const JOIN_TIMEOUT_MS = 15_000;
const HISTORY_LIMIT = 50;

interface Room {
  readonly name: string;
  readonly channel: string;
  readonly sub: Subscription;
}

/**
 * `relais chat`: the terminal chat of seed 004 on the `centrifuge` client. Rooms are `chat:<room>`
 * channels; messages are `{"text"}` publications shown as `[offset] user: text`, the user being
 * the authenticated publisher. Input lines are handled one after another, so what is typed (or
 * piped) is said in that order, and the end of input waits for every message sent before it.
 */
export async function chatCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { user: { type: 'string' }, token: { type: 'string' }, url: { type: 'string' }, room: { type: 'string' } },
  });
  if (positionals.length > 0) throw new Error(USAGE);
  if (values.user !== undefined && values.token !== undefined) throw new Error(`relais chat: --user and --token exclude each other\n${USAGE}`);
  const url = websocketUrl(values.url, process.env);
  const user = values.user ?? (process.env['USER'] || `guest-${randomId()}`);
  const centrifuge = cliCentrifuge({ url, user, name: 'relais-chat', ...(values.token !== undefined ? { token: values.token } : {}) });
  const chat = new TerminalChat(centrifuge, new ChatScreen(process.stdin, process.stdout), url, values.token === undefined ? user : undefined);
  await chat.run(values.room);
}

class TerminalChat {
  private readonly rooms = new Map<string, Room>();
  private current: string | undefined;
  private clientId = '';
  private everConnected = false;
  private stopping = false;

  constructor(
    private readonly centrifuge: Centrifuge,
    private readonly screen: ChatScreen,
    private readonly url: string,
    private readonly user: string | undefined,
  ) {}

  async run(initialRoom: string | undefined): Promise<void> {
    this.watchConnection();
    this.screen.onInterrupt(() => this.stop(0));
    process.on('SIGINT', () => this.stop(0));
    process.on('SIGTERM', () => this.stop(0));
    process.stdout.on('error', () => this.stop(0));
    this.screen.print(`* connecting to ${this.url}${this.user !== undefined ? ` as ${this.user}` : ''}; /help for commands`);
    this.centrifuge.connect();

    if (initialRoom !== undefined) await this.handle({ kind: 'join', room: initialRoom });
    this.showPrompt();
    for (;;) {
      const line = await this.screen.nextLine();
      if (line === undefined || this.stopping) break;
      const input = parseInput(line);
      if (input.kind === 'quit') break;
      await this.handle(input);
      this.showPrompt();
    }
    this.stop(0);
  }

  private async handle(input: Exclude<ChatInput, { kind: 'quit' }>): Promise<void> {
    try {
      await this.execute(input);
    } catch (err) {
      this.screen.print(`! ${describeError(err)}`);
    }
  }

  private async execute(input: Exclude<ChatInput, { kind: 'quit' }>): Promise<void> {
    switch (input.kind) {
      case 'empty':
        return;
      case 'help':
        for (const line of HELP) this.screen.print(line);
        return;
      case 'unknown':
        this.screen.print(`! unknown command ${input.command} (try /help)`);
        return;
      case 'join':
        if (input.room === undefined) this.screen.print('! usage: /join <room>');
        else await this.join(input.room);
        return;
      case 'leave':
        this.leave(this.roomArgument(input.room, 'leave'));
        return;
      case 'history':
        await this.history(this.roomArgument(input.room, 'history'));
        return;
      case 'who':
        await this.who(this.roomArgument(input.room, 'who'));
        return;
      case 'say':
        await this.say(input.text);
        return;
    }
  }

  private roomArgument(room: string | undefined, command: string): string {
    const name = room ?? this.current;
    if (name === undefined) throw new Error(`usage: /${command} <room> (no current room)`);
    return name;
  }

  private watchConnection(): void {
    this.centrifuge.on('connecting', (ctx) => {
      if (this.everConnected && !this.stopping) this.screen.print(`* connection lost (${ctx.reason}); reconnecting…`);
    });
    let unreachableShown = false;
    this.centrifuge.on('error', (ctx) => {
      if (this.stopping) return;
      if (ctx.type !== 'transport') this.screen.print(`! ${ctx.type} error: ${describeError(ctx.error)}`);
      else if (!unreachableShown) this.screen.print(`! cannot reach ${this.url}: ${describeError(ctx.error)}; retrying`);
      if (ctx.type === 'transport') unreachableShown = true;
    });
    this.centrifuge.on('connected', (ctx) => {
      unreachableShown = false;
      this.clientId = ctx.client;
      this.screen.print(this.everConnected ? '* reconnected' : '* connected');
      this.everConnected = true;
    });
    this.centrifuge.on('disconnected', (ctx) => {
      if (this.stopping) return;
      this.screen.print(`! disconnected: ${ctx.reason} (code ${ctx.code})`);
      this.stop(1);
    });
  }

  private async join(name: string): Promise<void> {
    const existing = this.rooms.get(name);
    if (existing) {
      this.current = name;
      this.screen.print(`* now talking in ${name}`);
      return;
    }
    const channel = chatChannel(name);
    const show = (text: string, ctx: PublicationContext): void => {
      this.screen.print(formatMessage({ room: name, offset: ctx.offset, sender: senderOf(ctx.info), text }, this.rooms.size > 1));
    };
    const sub = subscribeTyped<string>(this.centrifuge, channel, show, {
      joinLeave: true,
      parse: messageText,
      onGap: (gap) => this.screen.print(`* messages [${gap.from}]..[${gap.to}] of ${name} were missed; /history ${name} shows what is left`),
    });
    let joined = false;
    sub.on('join', (ctx) => {
      if (ctx.info.client !== this.clientId) this.screen.print(`* ${senderOf(ctx.info)} joined ${name}`);
    });
    sub.on('leave', (ctx) => {
      if (ctx.info.client !== this.clientId) this.screen.print(`* ${senderOf(ctx.info)} left ${name}`);
    });
    sub.on('subscribed', (ctx) => {
      if (joined && ctx.wasRecovering && !ctx.recovered) this.screen.print(`* back in ${name}; some messages may be missing: /history ${name}`);
    });
    sub.on('unsubscribed', (ctx) => {
      if (!joined || this.stopping || !this.rooms.has(name)) return;
      this.screen.print(`! removed from ${name}: ${ctx.reason} (code ${ctx.code})`);
      this.forget(name);
    });
    try {
      await sub.ready(JOIN_TIMEOUT_MS);
    } catch (err) {
      this.centrifuge.removeSubscription(sub);
      throw new Error(`could not join ${name}: ${describeError(err)}`, { cause: err });
    }
    joined = true;
    this.rooms.set(name, { name, channel, sub });
    this.current = name;
    this.screen.print(`* you joined ${name}`);
    try {
      await this.who(name);
    } catch {
      // presence is a courtesy here; the room works without it
    }
  }

  private leave(name: string): void {
    const room = this.rooms.get(name);
    if (!room) throw new Error(`you are not in ${name}`);
    this.forget(name);
    room.sub.unsubscribe();
    this.centrifuge.removeSubscription(room.sub);
    this.screen.print(`* you left ${name}`);
  }

  private forget(name: string): void {
    this.rooms.delete(name);
    if (this.current === name) this.current = [...this.rooms.keys()].at(-1);
  }

  private async history(name: string): Promise<void> {
    const result = await this.centrifuge.history(chatChannel(name), { limit: HISTORY_LIMIT, reverse: true });
    const publications = [...result.publications].reverse();
    this.screen.print(`* history of ${name}: ${publications.length === 0 ? 'no messages' : `${publications.length} message${publications.length === 1 ? '' : 's'}`}`);
    for (const p of publications) {
      this.screen.print(formatMessage({ room: name, offset: p.offset, sender: senderOf(p.info), text: messageText(p.data) }, this.rooms.size > 1));
    }
  }

  private async who(name: string): Promise<void> {
    const result = await this.centrifuge.presence(chatChannel(name));
    const users = Object.values(result.clients).map((c) => c.user);
    this.screen.print(formatPresence(name, users));
  }

  private async say(text: string): Promise<void> {
    const room = this.current === undefined ? undefined : this.rooms.get(this.current);
    if (!room) {
      this.screen.print('! join a room first: /join <room>');
      return;
    }
    const message: ChatMessage = { text };
    try {
      await this.centrifuge.publish(room.channel, message);
    } catch (err) {
      this.screen.print(`! not sent to ${room.name}: ${describeError(err)}`);
    }
  }

  private showPrompt(): void {
    if (!this.stopping) this.screen.prompt(this.current === undefined ? '(no room)> ' : `[${this.current}]> `);
  }

  /** Leaves every room by closing the connection (the others see the leaves), then exits. */
  private stop(code: number): void {
    if (this.stopping) return;
    this.stopping = true;
    this.centrifuge.disconnect();
    this.screen.close();
    void flushAndExit(code);
  }
}
