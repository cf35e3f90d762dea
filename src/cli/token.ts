import { parseArgs } from 'node:util';
import { mintToken } from '../../client/token.js';
import { DEV_TOKEN_SECRET } from '../config/defaults.js';

/** The HS256 secret the CLI signs with: RELAIS_TOKEN_SECRET, or the development one outside production. */
export function cliTokenSecret(): string {
  const secret = process.env['RELAIS_TOKEN_SECRET'];
  if (secret) return secret;
  if (process.env['NODE_ENV'] === 'production') throw new Error('RELAIS_TOKEN_SECRET is required to mint tokens in production');
  return DEV_TOKEN_SECRET;
}

export async function mintTokenCommand(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      user: { type: 'string' },
      ttl: { type: 'string', default: '86400' },
      info: { type: 'string' },
      channels: { type: 'string' },
      channel: { type: 'string' },
    },
  });
  if (values.user === undefined) throw new Error('relais token: --user <id> is required (use --user "" for anonymous)');
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl < 0) throw new Error('relais token: --ttl must be a whole number of seconds');
  let info: unknown;
  if (values.info !== undefined) {
    try {
      info = JSON.parse(values.info);
    } catch {
      throw new Error('relais token: --info must be JSON');
    }
  }
  const token = await mintToken(cliTokenSecret(), {
    user: values.user,
    ttlSeconds: ttl,
    ...(info !== undefined ? { info } : {}),
    ...(values.channels ? { channels: values.channels.split(',').filter((c) => c !== '') } : {}),
    ...(values.channel ? { channel: values.channel } : {}),
  });
  console.log(token);
}
