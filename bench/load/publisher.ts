/**
 * Publisher load process: one lean connection that publishes at a set rate, each payload
 * carrying its step, its sequence number within the room and its send time.
 */
import { openLeanClient } from './clients.js';
import { encodePayload, type ClientHandler, type LeanClient } from './lean_client.js';
import { nowMs, type Endpoint, type FromPublisher, type RunCommand, type ToPublisher } from './messages.js';

function reply(message: FromPublisher): void {
  process.send?.(message);
}

let client: LeanClient | null = null;
let errors = 0;
let firstError = '';
let running = false;

const handler: ClientHandler = {
  opened: () => undefined,
  ready: () => reply({ type: 'online' }),
  subscribed: () => undefined,
  publication: () => undefined,
  refused: (message) => {
    errors++;
    if (firstError === '') firstError = message;
  },
  closed: (reason) => reply({ type: 'fatal', message: `publisher connection closed${running ? ' while publishing' : ''}: ${reason}` }),
};

function connect(endpoint: Endpoint): void {
  const baseUrl = endpoint.urls[0];
  if (baseUrl === undefined) throw new Error('no URL to publish to');
  client = openLeanClient(endpoint.protocol, { baseUrl, localAddress: undefined, user: 'bench-publisher', tokenSecret: endpoint.tokenSecret }, handler);
}

interface Paced {
  sent: number;
  behind: number;
  elapsedMs: number;
}

/**
 * Publishes `rate` per second for durationMs, from a timer: whatever is due is sent at each
 * tick, at most 100 ms worth at once (a stalled timer catches up without one huge burst), and
 * nothing while the socket holds maxBuffered bytes.
 */
function pace(out: LeanClient, command: RunCommand, stepId: number, durationMs: number): Promise<Paced> {
  const seqs = new Uint32Array(command.rooms);
  const pad = 'x'.repeat(command.padBytes);
  const maxPerTick = Math.max(1, Math.ceil(command.rate / 10));
  const start = performance.now();
  let sent = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      const elapsed = performance.now() - start;
      const due = Math.floor((command.rate * Math.min(elapsed, durationMs)) / 1000);
      let n = Math.min(due - sent, maxPerTick);
      while (n > 0 && out.bufferedAmount() <= command.maxBufferedBytes) {
        const room = command.rooms === 1 ? 0 : Math.floor(Math.random() * command.rooms);
        const seq = seqs[room] ?? 0;
        seqs[room] = seq + 1;
        out.publish(room, encodePayload(stepId, seq, nowMs(), pad));
        sent++;
        n--;
      }
      if (elapsed >= durationMs) resolve({ sent, behind: due - sent, elapsedMs: elapsed });
      else setTimeout(tick, 1);
    };
    tick();
  });
}

async function run(command: RunCommand): Promise<void> {
  if (client === null) throw new Error('run before connect');
  running = true;
  errors = 0;
  firstError = '';
  if (command.warmupMs > 0) await pace(client, command, command.warmStep, command.warmupMs);
  reply({ type: 'measuring', at: nowMs() });
  const measured = await pace(client, command, command.step, command.measureMs);
  running = false;
  reply({ type: 'done', sent: measured.sent, elapsedMs: measured.elapsedMs, behind: measured.behind, errors, firstError });
}

process.on('message', (raw: unknown) => {
  const message = raw as ToPublisher;
  const work = message.type === 'connect' ? Promise.resolve(connect(message.endpoint)) : run(message);
  work.catch((err: unknown) => reply({ type: 'fatal', message: err instanceof Error ? err.message : String(err) }));
});
process.on('disconnect', () => process.exit(0));
// A plain exit (not death by signal) lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0));
reply({ type: 'ready' });
