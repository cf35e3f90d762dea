import { createHmac } from 'node:crypto';

const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

interface Minted {
  readonly token: string;
  readonly expiresAt: number;
}

/** Tokens by secret and subject: a client keeps its token across reconnects, as the SDKs do. */
const minted = new Map<string, Minted>();

/** An HS256 connection token for `sub`, valid for ttlSeconds; the same one again while it has over half its life left. */
export function connectionToken(secret: string, sub: string, ttlSeconds = 3600): string {
  const key = `${secret}\n${sub}`;
  const now = Date.now();
  const kept = minted.get(key);
  if (kept && kept.expiresAt - now > (ttlSeconds * 1000) / 2) return kept.token;
  const exp = Math.floor(now / 1000) + ttlSeconds;
  const claims = Buffer.from(JSON.stringify({ sub, exp })).toString('base64url');
  const signature = createHmac('sha256', secret).update(`${header}.${claims}`).digest('base64url');
  const token = `${header}.${claims}.${signature}`;
  minted.set(key, { token, expiresAt: exp * 1000 });
  return token;
}
