import { parseArgs } from 'node:util';
import type { PublicationContext } from 'centrifuge';
import { subscribeTyped } from '../../client/index.js';
import { cliCentrifuge, describeError, flushAndExit, randomId, websocketUrl } from './endpoints.js';

const USAGE = 'usage: relais subscribe <channel> [--user <id> | --token <jwt>] [--url <server url>]';

/** One line of `relais subscribe` output. */
interface PublicationLine {
  readonly channel: string;
  readonly offset?: number;
  readonly data: unknown;
  readonly info?: unknown;
  readonly tags?: Record<string, string>;
}

/**
 * `relais subscribe <channel>`: prints each publication as one JSON line on stdout, each offset
 * once and in order, across reconnects (the SDK recovers what was missed; repeats are dropped
 * by offset). Connection and subscription state goes to stderr. Exits 0 on SIGINT or SIGTERM,
 * 1 when the server refuses the connection or the subscription for good.
 */
export function subscribeCommand(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { user: { type: 'string' }, token: { type: 'string' }, url: { type: 'string' } },
  });
  const [channel, ...extra] = positionals;
  if (channel === undefined || extra.length > 0) throw new Error(USAGE);
  if (values.user !== undefined && values.token !== undefined) throw new Error(`relais subscribe: --user and --token exclude each other\n${USAGE}`);
  const url = websocketUrl(values.url, process.env);
  const user = values.user ?? `cli-${randomId()}`;
  const log = (message: string): void => {
    process.stderr.write(`relais subscribe: ${message}\n`);
  };

  const centrifuge = cliCentrifuge({ url, user, name: 'relais-subscribe', ...(values.token !== undefined ? { token: values.token } : {}) });
  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    centrifuge.disconnect();
    void flushAndExit(code);
  };

  let everConnected = false;
  centrifuge.on('connecting', (ctx) => {
    if (stopping) return;
    if (everConnected) log(`connection lost (${ctx.reason}, code ${ctx.code}); reconnecting`);
    else log(`connecting to ${url}${values.token === undefined ? ` as ${user}` : ''}`);
  });
  centrifuge.on('connected', (ctx) => {
    log(`${everConnected ? 'reconnected' : 'connected'} (client ${ctx.client})`);
    transportErrorShown = false;
    everConnected = true;
  });
  centrifuge.on('disconnected', (ctx) => {
    if (stopping) return;
    log(`disconnected for good: ${ctx.reason} (code ${ctx.code})`);
    stop(1);
  });
  let transportErrorShown = false;
  centrifuge.on('error', (ctx) => {
    if (stopping) return;
    if (ctx.type === 'transport') {
      // Once per outage: the SDK retries with backoff and would repeat it every attempt.
      if (!transportErrorShown) log(`cannot reach ${url}: ${describeError(ctx.error)}; retrying`);
      transportErrorShown = true;
      return;
    }
    log(`${ctx.type} error: ${describeError(ctx.error)}`);
  });

  process.stdout.on('error', () => stop(0)); // the reader went away (`| head`): nothing left to do
  const print = (data: unknown, ctx: PublicationContext): void => {
    const line: PublicationLine = {
      channel: ctx.channel,
      ...(ctx.offset !== undefined ? { offset: ctx.offset } : {}),
      data,
      ...(ctx.info !== undefined ? { info: ctx.info } : {}),
      ...(ctx.tags !== undefined && Object.keys(ctx.tags).length > 0 ? { tags: ctx.tags } : {}),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  const sub = subscribeTyped<unknown>(centrifuge, channel, print, {
    minResubscribeDelay: 200,
    maxResubscribeDelay: 5_000,
    onGap: (gap) => log(`missed offsets ${gap.from}..${gap.to}: history no longer holds them`),
  });
  sub.on('subscribing', (ctx) => {
    if (!stopping && ctx.code !== 0) log(`resubscribing to ${channel} (${ctx.reason})`);
  });
  sub.on('subscribed', (ctx) => {
    const at = ctx.streamPosition ? ` at offset ${ctx.streamPosition.offset}, epoch ${ctx.streamPosition.epoch}` : '';
    if (!ctx.wasRecovering) log(`subscribed to ${channel}${at}`);
    else if (ctx.recovered) log(`resubscribed to ${channel}${at}: ${ctx.hasRecoveredPublications ? 'missed publications recovered' : 'nothing was missed'}`);
    else log(`resubscribed to ${channel}${at}: history no longer covers the time away, publications may be missing`);
  });
  sub.on('unsubscribed', (ctx) => {
    if (stopping) return;
    log(`unsubscribed from ${channel}: ${ctx.reason} (code ${ctx.code})`);
    stop(1);
  });
  sub.on('error', (ctx) => {
    if (!stopping) log(`${ctx.type} error on ${channel}: ${describeError(ctx.error)}`);
  });

  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  centrifuge.connect();
  return Promise.resolve(); // runs until a signal or a refusal ends the process
}
