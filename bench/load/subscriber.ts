/**
 * Subscriber load process: opens many lean connections, each subscribed to one room, and
 * counts the deliveries of the measured step (latency, duplicates, gaps) for the parent,
 * which drives it over IPC (see messages.ts).
 */
import { Histogram } from '../metrics.js';
import { openLeanClient } from './clients.js';
import type { ClientHandler, LeanClient, Payload, SubscribeReply } from './lean_client.js';
import { emptyStepCounts, nowMs, type ConnectCommand, type Endpoint, type FromSubscriber, type Position, type ToSubscriber } from './messages.js';

function reply(message: FromSubscriber): void {
  process.send?.(message);
}

const NO_STEP = Number.NaN;

/** The measured step, and its counts, shared by every connection of the process. */
let stepId = NO_STEP;
let counts = emptyStepCounts();
/** Last delivery of any step, for the parent's wait for quiet. */
let lastAnyRecvAt = 0;
const latency = new Histogram();
let dropping = false;

/** Milliseconds from the start of an open to the socket open and to the protocol handshake. */
interface Phases {
  openMs: number;
  readyMs: number;
}

type Opened = (error: string | null, reply: SubscribeReply | null, phases: Phases) => void;

/** One subscribed connection; survives reconnects (a new socket, the same counters). */
class Connection {
  client: LeanClient | null = null;
  /** Only the current socket's events count: an old one may still report its close. */
  link: Link | null = null;
  lastSeq = -1;
  lastOffset = -1;
  epoch = '';
  saved: Position | null = null;
  subscribed = false;

  constructor(
    readonly index: number,
    readonly room: number,
    readonly baseUrl: string,
    readonly localAddress: string | undefined,
  ) {}

  open(endpoint: Endpoint, recover: Position | null, done: Opened): void {
    this.subscribed = false;
    const link = new Link(this, recover, done);
    this.link = link;
    this.client = openLeanClient(
      endpoint.protocol,
      { baseUrl: this.baseUrl, localAddress: this.localAddress, user: `bench-${this.index}`, tokenSecret: endpoint.tokenSecret },
      link,
    );
  }

  onSubscribed(reply: SubscribeReply): void {
    this.subscribed = true;
    if (reply.position !== null) {
      this.epoch = reply.position.epoch;
      // After a recovery the replayed publications continue from where this connection stopped.
      if (!reply.recovered) this.lastOffset = reply.position.offset;
    }
  }

  onPublication(payload: Payload | null, offset: number, fromRecovery: boolean): void {
    const now = nowMs();
    lastAnyRecvAt = now;
    if (offset >= 0) {
      if (this.lastOffset >= 0) {
        if (offset <= this.lastOffset) counts.offsetDuplicates++;
        else if (offset > this.lastOffset + 1) counts.offsetGaps += offset - this.lastOffset - 1;
      }
      if (offset > this.lastOffset) this.lastOffset = offset;
    }
    if (payload === null) {
      counts.malformed++;
      return;
    }
    if (payload.s !== stepId) {
      counts.stale++;
      return;
    }
    counts.received++;
    if (counts.firstRecvAt === 0) counts.firstRecvAt = now;
    counts.lastRecvAt = now;
    if (!fromRecovery) latency.recordMs(now - payload.ts);
    if (payload.q <= this.lastSeq) {
      counts.duplicates++;
    } else {
      if (payload.q > this.lastSeq + 1) counts.gaps += payload.q - this.lastSeq - 1;
      this.lastSeq = payload.q;
    }
  }
}

/** The handler of one socket of a Connection. */
class Link implements ClientHandler {
  private readonly started = nowMs();
  private readonly phases: Phases = { openMs: 0, readyMs: 0 };

  constructor(
    private readonly conn: Connection,
    private readonly recover: Position | null,
    private done: Opened | null,
  ) {}

  private finish(error: string | null, subscribeReply: SubscribeReply | null): void {
    const done = this.done;
    this.done = null;
    done?.(error, subscribeReply, this.phases);
  }

  opened(): void {
    this.phases.openMs = nowMs() - this.started;
  }

  ready(): void {
    if (this.conn.link !== this) return;
    this.phases.readyMs = nowMs() - this.started;
    this.conn.client?.subscribe(this.conn.room, this.recover);
  }

  subscribed(subscribeReply: SubscribeReply): void {
    if (this.conn.link !== this) return;
    this.conn.onSubscribed(subscribeReply);
    this.finish(null, subscribeReply);
  }

  publication(payload: Payload | null, offset: number, fromRecovery: boolean): void {
    if (this.conn.link === this) this.conn.onPublication(payload, offset, fromRecovery);
  }

  refused(message: string): void {
    if (this.conn.link !== this) return;
    if (this.done) {
      this.finish(`refused: ${message}`, null);
      this.conn.client?.terminate();
    }
  }

  closed(reason: string): void {
    if (this.conn.link !== this) return;
    if (this.done) {
      this.finish(reason, null);
      return;
    }
    if (!dropping) {
      counts.closed++;
      if (counts.closeReason === '') counts.closeReason = reason;
    }
  }
}

let endpoint: Endpoint | null = null;
const connections: Connection[] = [];

interface BatchResult {
  ok: number;
  failed: number;
  firstError: string;
  times: number[];
  openMs: number[];
  readyMs: number[];
  recovered: number;
  notRecovered: number;
  replayed: number;
}

/** Opens every connection, `concurrency` handshakes at a time, within timeoutMs. */
function openAll(target: Endpoint, recover: boolean, concurrency: number, timeoutMs: number, spreadMs = 0): Promise<BatchResult> {
  const result: BatchResult = { ok: 0, failed: 0, firstError: '', times: [], openMs: [], readyMs: [], recovered: 0, notRecovered: 0, replayed: 0 };
  return new Promise((resolve) => {
    let next = 0;
    let finished = 0;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      result.failed += connections.length - finished;
      if (result.failed > 0 && result.firstError === '') result.firstError = `timeout after ${timeoutMs} ms`;
      resolve(result);
    };
    const timer = setTimeout(settle, timeoutMs);
    const startOne = (): void => {
      const conn = connections[next++];
      if (conn === undefined) return;
      if (spreadMs > 0) setTimeout(() => openOne(conn), Math.random() * spreadMs);
      else openOne(conn);
    };
    const openOne = (conn: Connection): void => {
      if (settled) return;
      const started = nowMs();
      conn.open(target, recover ? conn.saved : null, (error, subscribeReply, phases) => {
        if (settled) return;
        finished++;
        if (error === null) {
          result.ok++;
          result.times.push(nowMs() - started);
          result.openMs.push(phases.openMs);
          result.readyMs.push(phases.readyMs);
          if (subscribeReply?.recovered) result.recovered++;
          else result.notRecovered++;
          result.replayed += subscribeReply?.replayed ?? 0;
        } else {
          result.failed++;
          if (result.firstError === '') result.firstError = error;
        }
        if (finished === connections.length) settle();
        else startOne();
      });
    };
    if (connections.length === 0) settle();
    for (let i = 0; i < Math.min(concurrency, connections.length); i++) startOne();
  });
}

async function connect(command: ConnectCommand): Promise<void> {
  endpoint = command.endpoint;
  for (let i = 0; i < command.count; i++) {
    const g = command.first + i;
    const url = command.endpoint.urls[g % command.endpoint.urls.length] ?? '';
    const address = command.localAddresses.length > 0 ? command.localAddresses[Math.floor(g / command.perAddress) % command.localAddresses.length] : undefined;
    connections.push(new Connection(g, g % command.rooms, url, address));
  }
  const started = nowMs();
  const result = await openAll(command.endpoint, false, command.concurrency, command.timeoutMs);
  reply({ type: 'connected', ok: result.ok, failed: result.failed, firstError: result.firstError, ms: nowMs() - started });
}

function begin(id: number): void {
  stepId = id;
  counts = emptyStepCounts();
  latency.reset();
  for (const conn of connections) conn.lastSeq = -1;
  reply({ type: 'begun' });
}

function end(): void {
  reply({ type: 'stats', ...counts, latency: latency.toData() });
  stepId = NO_STEP;
}

function drop(): void {
  dropping = true;
  let positioned = 0;
  for (const conn of connections) {
    conn.saved = conn.lastOffset >= 0 && conn.epoch !== '' ? { offset: conn.lastOffset, epoch: conn.epoch } : null;
    if (conn.saved) positioned++;
    conn.link = null;
    conn.client?.terminate();
    conn.client = null;
  }
  reply({ type: 'dropped', count: connections.length, positioned });
}

async function reconnect(concurrency: number, timeoutMs: number, spreadMs: number): Promise<void> {
  if (endpoint === null) throw new Error('reconnect before connect');
  dropping = false;
  const result = await openAll(endpoint, true, concurrency, timeoutMs, spreadMs);
  reply({
    type: 'recovery',
    timesMs: result.times,
    openMs: result.openMs,
    readyMs: result.readyMs,
    recovered: result.recovered,
    notRecovered: result.notRecovered,
    failed: result.failed,
    firstError: result.firstError,
    replayed: result.replayed,
  });
}

async function handle(message: ToSubscriber): Promise<void> {
  switch (message.type) {
    case 'connect':
      return connect(message);
    case 'begin':
      return begin(message.step);
    case 'poll':
      return reply({ type: 'progress', unique: counts.received - counts.duplicates, lastAnyRecvAt });
    case 'end':
      return end();
    case 'drop':
      return drop();
    case 'reconnect':
      return reconnect(message.concurrency, message.timeoutMs, message.spreadMs);
  }
}

process.on('message', (message: unknown) => {
  handle(message as ToSubscriber).catch((err: unknown) => reply({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }));
});
// The parent is gone: nothing left to measure for.
process.on('disconnect', () => process.exit(0));
// A plain exit (not death by signal) lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0));
reply({ type: 'ready' });
