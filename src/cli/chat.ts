import { parseArgs } from 'node:util';
import type { Centrifuge, PublicationContext, Subscription } from 'centrifuge';
import { chatChannel, dmChannel, DM_NAMESPACE, personalChannel, ROOM_NAMESPACE, subscribeTyped, type ChatMessage } from '../../client/index.js';
import { ChatScreen } from './chat_screen.js';
import { HELP, formatMessage, formatPresence, formatRooms, messageText, parseInput, senderOf, type ChatInput, type RoomListEntry } from './chat_format.js';
import { cliCentrifuge, describeError, flushAndExit, randomId, websocketUrl } from './endpoints.js';

const USAGE = 'usage: relais chat [--user <id> | --token <jwt>] [--room <name>] [--url <server url>]';
const JOIN_TIMEOUT_MS = 15_000;
const HISTORY_LIMIT = 50;

/** How long shown messages wait before the CLI marks them read (one `chat.read` for a burst). */
const READ_DEBOUNCE_MS = 300;
/** The characters of a channel name the server accepts. */
const CHANNEL_CHARS = /^[A-Za-z0-9_.:@=,#+~/-]+$/;

interface Room {
  readonly name: string;
  readonly channel: string;
  sub: Subscription | undefined;
  /** The room keeps read positions (a room with members, a conversation): what is shown is marked read. */
  readonly tracksReads: boolean;
  /** Highest offset shown, and whether it still has to be marked read. */
  shownUpTo: number;
  readTimer: NodeJS.Timeout | undefined;
}

/** Where /history continues in a room: before the earliest message shown, in that epoch. */
interface HistoryCursor {
  oldest: number | undefined;
  epoch: string;
}

/**
 * `relais chat`: the terminal chat of seed 004 on the `centrifuge` client. Open rooms are
 * `chat:<room>` channels; rooms with members (`room:<name>`, /create, /invite) and
 * conversations (`/dm <user>`) show their last messages on join and are marked read as they
 * are shown, so /rooms counts only what was not seen anywhere. Messages are `{"text"}`
 * publications shown as `[offset] user: text`, the user being the authenticated publisher.
 * Input lines are handled one after another, so what is typed (or piped) is said in that
 * order, and the end of input waits for every message sent before it.
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
  const me = values.token === undefined ? user : tokenSubject(values.token);
  const chat = new TerminalChat(centrifuge, new ChatScreen(process.stdin, process.stdout), url, values.token === undefined ? user : undefined, me);
  await chat.run(values.room);
}

/** The user a connection token names (its `sub`), read without checking it: the server does. */
function tokenSubject(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof payload.sub === 'string' ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}

class TerminalChat {
  private readonly rooms = new Map<string, Room>();
  private readonly cursors = new Map<string, HistoryCursor>();
  private current: string | undefined;
  private clientId = '';
  private everConnected = false;
  private stopping = false;

  constructor(
    private readonly centrifuge: Centrifuge,
    private readonly screen: ChatScreen,
    private readonly url: string,
    private readonly user: string | undefined,
    /** The connection's user id, when known: names conversations and the personal channel. */
    private readonly me: string | undefined,
  ) {}

  async run(initialRoom: string | undefined): Promise<void> {
    this.watchConnection();
    this.screen.onInterrupt(() => this.stop(0));
    process.on('SIGINT', () => this.stop(0));
    process.on('SIGTERM', () => this.stop(0));
    process.stdout.on('error', () => this.stop(0));
    this.screen.print(`* connecting to ${this.url}${this.user !== undefined ? ` as ${this.user}` : ''}; /help for commands`);
    this.centrifuge.connect();
    this.followInbox();

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
      case 'create':
        if (input.room === undefined) this.screen.print('! usage: /create <name> [title]');
        else await this.create(input.room, input.title);
        return;
      case 'invite':
        if (input.user === undefined) this.screen.print('! usage: /invite <user> [room]');
        else await this.invite(input.user, this.roomArgument(input.room, 'invite <user>'));
        return;
      case 'rooms':
        await this.listRooms();
        return;
      case 'dm':
        if (input.user === undefined) this.screen.print('! usage: /dm <user>');
        else await this.join(`@${input.user}`);
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

  /**
   * The channel of a room as typed: a joined room's own; `@bob` the conversation with bob;
   * `room:team` (any name with a namespace) as it is; anything else an open room, `chat:<name>`.
   */
  private channelOf(name: string): string {
    const joined = this.rooms.get(name);
    if (joined) return joined.channel;
    if (name.startsWith('@')) {
      if (this.me === undefined || this.me === '') throw new Error('conversations need a user id (--user, or a token with one)');
      return dmChannel(this.me, name.slice(1));
    }
    if (name.includes(':')) {
      if (!CHANNEL_CHARS.test(name)) throw new TypeError(`invalid room name "${name}": use letters, digits and _ . : @ = , # + ~ / - (no spaces)`);
      return name;
    }
    return chatChannel(name);
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

  /**
   * Follows the user's personal channel: a direct message from someone whose conversation is
   * not open here shows as a notice. Quietly skipped where it cannot be followed.
   */
  private followInbox(): void {
    if (this.me === undefined || this.me === '') return;
    let channel: string;
    try {
      channel = personalChannel(this.me);
    } catch {
      return;
    }
    const sub = this.centrifuge.newSubscription(channel);
    sub.on('publication', (ctx) => {
      const conversation = ctx.tags?.['dm_channel'];
      const from = senderOf(ctx.info);
      if (conversation !== undefined) {
        if (ctx.info?.user === this.me || [...this.rooms.values()].some((r) => r.channel === conversation)) return;
        this.screen.print(`* @${from}: ${messageText(ctx.data)} (/dm ${from} to answer)`);
      } else {
        this.screen.print(`* for you from ${from}: ${messageText(ctx.data)}`);
      }
    });
    sub.on('error', () => undefined);
    sub.subscribe();
  }

  private async join(name: string): Promise<void> {
    const existing = this.rooms.get(name);
    if (existing) {
      this.current = name;
      this.screen.print(`* now talking in ${name}`);
      return;
    }
    const channel = this.channelOf(name);
    const namespace = channel.slice(0, channel.indexOf(':'));
    const room: Room = { name, channel, sub: undefined, tracksReads: namespace === ROOM_NAMESPACE || namespace === DM_NAMESPACE, shownUpTo: 0, readTimer: undefined };
    const cursor = this.cursor(name);
    const show = (text: string, ctx: PublicationContext): void => {
      this.screen.print(formatMessage({ room: name, offset: ctx.offset, sender: senderOf(ctx.info), text }, this.rooms.size > 1));
      if (ctx.offset !== undefined) {
        if (cursor.oldest === undefined || ctx.offset < cursor.oldest) cursor.oldest = ctx.offset;
        this.shown(room, ctx.offset);
      }
    };
    // Listed before it is subscribed: the last messages shown on join belong to it.
    this.rooms.set(name, room);
    let joined = false;
    let announced = false;
    let sub: Subscription;
    try {
      sub = subscribeTyped<string>(this.centrifuge, channel, show, {
        joinLeave: true,
        parse: messageText,
        onGap: (gap) => this.screen.print(`* messages [${gap.from}]..[${gap.to}] of ${name} were missed; /history ${name} shows what is left`),
      });
    } catch (err) {
      this.rooms.delete(name);
      throw err;
    }
    room.sub = sub;
    sub.on('join', (ctx) => {
      if (ctx.info.client !== this.clientId) this.screen.print(`* ${senderOf(ctx.info)} joined ${name}`);
    });
    sub.on('leave', (ctx) => {
      if (ctx.info.client !== this.clientId) this.screen.print(`* ${senderOf(ctx.info)} left ${name}`);
    });
    sub.on('subscribed', (ctx) => {
      const epoch = ctx.streamPosition?.epoch ?? '';
      if (epoch !== cursor.epoch) {
        cursor.epoch = epoch;
        cursor.oldest = undefined;
      }
      // Said before the last messages the subscribe reply brings are shown.
      if (!announced) {
        announced = true;
        this.screen.print(`* you joined ${name}`);
      }
      if (joined && ctx.wasRecovering && !ctx.recovered) this.screen.print(`* back in ${name}; some messages may be missing: /history ${name}`);
    });
    let refused: string | undefined;
    sub.on('unsubscribed', (ctx) => {
      // A refused subscribe (not a member: permission denied, 103) says why here.
      if (!joined) refused = `${ctx.reason} (code ${ctx.code})`;
      if (!joined || this.stopping || this.rooms.get(name) !== room) return;
      this.screen.print(`! removed from ${name}: ${ctx.reason} (code ${ctx.code})`);
      this.forget(name);
    });
    try {
      await sub.ready(JOIN_TIMEOUT_MS);
    } catch (err) {
      this.rooms.delete(name);
      this.centrifuge.removeSubscription(sub);
      throw new Error(`could not join ${name}: ${refused ?? describeError(err)}`, { cause: err });
    }
    joined = true;
    this.current = name;
    try {
      await this.who(name);
    } catch {
      // presence is a courtesy here; the room works without it
    }
  }

  private cursor(name: string): HistoryCursor {
    let cursor = this.cursors.get(name);
    if (!cursor) this.cursors.set(name, (cursor = { oldest: undefined, epoch: '' }));
    return cursor;
  }

  /** A message of the room was shown: marked read shortly, once for a burst. */
  private shown(room: Room, offset: number): void {
    if (!room.tracksReads || offset <= room.shownUpTo) return;
    room.shownUpTo = offset;
    room.readTimer ??= setTimeout(() => {
      room.readTimer = undefined;
      this.centrifuge.rpc('chat.read', { room: room.channel, offset: room.shownUpTo }).catch(() => undefined);
    }, READ_DEBOUNCE_MS);
  }

  private leave(name: string): void {
    const room = this.rooms.get(name);
    if (!room) throw new Error(`you are not in ${name}`);
    this.forget(name);
    if (room.sub) {
      room.sub.unsubscribe();
      this.centrifuge.removeSubscription(room.sub);
    }
    this.screen.print(`* you left ${name}`);
  }

  private forget(name: string): void {
    this.rooms.delete(name);
    if (this.current === name) this.current = [...this.rooms.keys()].at(-1);
  }

  /** The 50 messages before the earliest one shown in the room (the last 50 at first), oldest first. */
  private async history(name: string): Promise<void> {
    const channel = this.channelOf(name);
    const cursor = this.cursor(name);
    const since = cursor.oldest !== undefined ? { offset: cursor.oldest, epoch: cursor.epoch } : undefined;
    const result = await this.centrifuge.history(channel, { limit: HISTORY_LIMIT, reverse: true, ...(since ? { since } : {}) });
    if (result.epoch !== cursor.epoch) {
      // Another lineage (the room was cleared): nothing before what was shown is kept.
      cursor.epoch = result.epoch;
      if (since) cursor.oldest = undefined;
    }
    const publications = [...result.publications].reverse();
    if (publications.length === 0 && since) {
      this.screen.print(`* no earlier messages in ${name}`);
      return;
    }
    this.screen.print(`* history of ${name}: ${publications.length === 0 ? 'no messages' : `${publications.length} message${publications.length === 1 ? '' : 's'}`}`);
    for (const p of publications) {
      this.screen.print(formatMessage({ room: name, offset: p.offset, sender: senderOf(p.info), text: messageText(p.data) }, this.rooms.size > 1));
    }
    const first = publications[0]?.offset;
    if (first !== undefined && (cursor.oldest === undefined || first < cursor.oldest)) cursor.oldest = first;
  }

  private async who(name: string): Promise<void> {
    const result = await this.centrifuge.presence(this.channelOf(name));
    const users = Object.values(result.clients).map((c) => c.user);
    this.screen.print(formatPresence(name, users));
  }

  /** Creates `room:<name>` with this user as its first member, then joins it. */
  private async create(name: string, title: string | undefined): Promise<void> {
    const reply = await this.centrifuge.rpc('chat.create', { room: name, ...(title !== undefined ? { title } : {}) });
    const { room, created } = reply.data as { room: { room: string }; created: boolean };
    this.screen.print(created ? `* created ${room.room}` : `* ${room.room} exists already`);
    await this.join(room.room);
  }

  private async invite(user: string, name: string): Promise<void> {
    const reply = await this.centrifuge.rpc('chat.invite', { room: this.channelOf(name), user });
    const { added } = reply.data as { added: boolean };
    this.screen.print(added ? `* ${user} added to ${name}` : `* ${user} is in ${name} already`);
  }

  private async listRooms(): Promise<void> {
    const reply = await this.centrifuge.rpc('chat.rooms', {});
    for (const line of formatRooms((reply.data as { rooms: RoomListEntry[] }).rooms, this.me)) this.screen.print(line);
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
