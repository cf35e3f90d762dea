/**
 * A chat bot on `centrifuge` + `relais/client`: it sits in a room, greets who joins and answers
 * `!ping`, `!time` and `!who`.
 *
 * Run it next to a development server (three terminals):
 *
 *   npm start                                   # Relais on embedded defaults, port 8000
 *   npx tsx client/examples/chat_bot.ts         # the bot, in room "general"
 *   npx relais chat --user alice --room general # then type: !ping
 *
 * Settings (environment): RELAIS_URL (default ws://127.0.0.1:8000/connection/websocket),
 * RELAIS_TOKEN_SECRET (default: the development secret the server uses when none is set),
 * BOT_ROOM (default general), BOT_USER (default bot). Ctrl+C stops it.
 *
 * Outside this repository, import from 'relais/client' instead of '../index.js'. A real bot
 * gets its token from your backend; minting it here is for development only.
 */
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { chatChannel, isChatMessage, mintToken, subscribeTyped, type ChatMessage } from '../index.js';

const DEVELOPMENT_SECRET = 'relais-dev-token-secret-change-me'; // src/config/defaults.ts, never in production

const url = process.env['RELAIS_URL'] ?? 'ws://127.0.0.1:8000/connection/websocket';
const secret = process.env['RELAIS_TOKEN_SECRET'] ?? DEVELOPMENT_SECRET;
const room = process.env['BOT_ROOM'] ?? 'general';
const me = process.env['BOT_USER'] ?? 'bot';

const centrifuge = new Centrifuge(url, {
  websocket: WebSocket,
  name: 'relais-chat-bot',
  // Called for the first connection and again whenever the token is about to expire.
  getToken: () => mintToken(secret, { user: me, ttlSeconds: 3600 }),
});

const sub = subscribeTyped<ChatMessage>(
  centrifuge,
  chatChannel(room),
  (message, ctx) => {
    const from = ctx.info?.user;
    if (from === undefined || from === me) return; // server publications, and our own replies
    answer(message.text.trim(), from).then(
      (reply) => {
        if (reply !== undefined) say(reply);
      },
      (err: unknown) => console.error(`could not answer ${from}:`, err),
    );
  },
  {
    joinLeave: true,
    parse: (data) => {
      if (!isChatMessage(data)) throw new TypeError('not a chat message');
      return data;
    },
    onInvalid: (_err, ctx) => console.log(`ignoring non-chat publication at offset ${ctx.offset ?? '?'}`),
    onGap: (gap) => console.log(`missed messages ${gap.from}..${gap.to} while away`),
  },
);

async function answer(text: string, from: string): Promise<string | undefined> {
  switch (text) {
    case '!ping':
      return `pong, ${from}`;
    case '!time':
      return `it is ${new Date().toISOString()}`;
    case '!who': {
      const presence = await sub.presence();
      return `here: ${[...new Set(Object.values(presence.clients).map((c) => c.user))].sort().join(', ')}`;
    }
    default:
      return undefined;
  }
}

function say(text: string): void {
  const message: ChatMessage = { text };
  sub.publish(message).catch((err: unknown) => console.error('publish failed:', err));
}

sub.on('join', (ctx) => {
  if (ctx.info.user !== me) say(`welcome to ${room}, ${ctx.info.user}! try !ping, !time or !who`);
});
sub.on('subscribed', (ctx) => {
  console.log(ctx.wasRecovering ? `back in ${room} (recovered: ${ctx.recovered})` : `in ${room} as ${me}; Ctrl+C to stop`);
});
centrifuge.on('connecting', (ctx) => console.log(`connecting to ${url} (${ctx.reason})`));
centrifuge.on('disconnected', (ctx) => {
  console.log(`disconnected: ${ctx.reason}`);
  process.exit(ctx.code === 0 ? 0 : 1);
});
process.on('SIGINT', () => centrifuge.disconnect());

centrifuge.connect();
