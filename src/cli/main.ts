#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { serve } from './serve.js';
import { workerCount } from '../server/workers.js';

const USAGE = `relais <command> [options]

Commands:
  serve                          run a Relais node (default command)
      --config <file>            JSON or YAML config file (or RELAIS_CONFIG)
      --port <n> --host <addr>   listen address (or PORT, HOST)
      --workers <n>|auto         worker processes sharing the port (auto: one per core)
  token --user <id>              print a connection JWT signed with RELAIS_TOKEN_SECRET
      [--ttl <seconds>] [--channel <name>] [--info <json>] [--channels a,b]
  publish <channel> <json>       publish through the HTTP API (RELAIS_URL, RELAIS_API_KEY)
      [--url <http url>] [--idempotency-key <key>]
  subscribe <channel>            print publications as JSON lines; recovers after reconnects
      [--user <id> | --token <jwt>] [--url <url>]
  chat [--user <id> | --token <jwt>] [--room <name>] [--url <url>]
                                 interactive terminal chat: /join /leave /history /who
                                 /create /invite /rooms /dm /quit (see docs/chat.md)
  help                           this text

Environment: see docs/configuration.md.`;

async function main(argv: string[]): Promise<void> {
  const [command = 'serve', ...rest] = argv;
  switch (command) {
    case 'serve': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, workers: { type: 'string' } } });
      await serve({
        ...(values.config ? { config: values.config } : {}),
        ...(values.port ? { port: Number(values.port) } : {}),
        ...(values.host ? { host: values.host } : {}),
        ...(values.workers ? { workers: workerCount(values.workers) } : {}),
      });
      return;
    }
    case 'token': {
      // jose signs the token: a server never needs it unless it reads keys from a JWKS URL.
      const { mintTokenCommand } = await import('./token.js');
      await mintTokenCommand(rest);
      return;
    }
    case 'publish': {
      const { publishCommand } = await import('./publish.js');
      await publishCommand(rest);
      return;
    }
    case 'subscribe': {
      const { subscribeCommand } = await import('./subscribe.js');
      await subscribeCommand(rest);
      return;
    }
    case 'chat': {
      const { chatCommand } = await import('./chat.js');
      await chatCommand(rest);
      return;
    }
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return;
    default:
      console.error(`unknown command "${command}"\n\n${USAGE}`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
