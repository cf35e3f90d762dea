import { SignJWT } from 'jose';

export interface TokenClaims {
  /** User id (`sub`); '' for an anonymous token. */
  readonly user: string;
  /** Lifetime in seconds; 0 for a token that never expires. */
  readonly ttlSeconds?: number;
  /** Connection info (or channel info, in a subscription token), shown in presence and publications. */
  readonly info?: unknown;
  /** Server-side subscriptions made at connect. */
  readonly channels?: readonly string[];
  /** Makes a subscription token for this channel instead of a connection token. */
  readonly channel?: string;
  /** The token's id (`jti`), by which the server API can revoke it. */
  readonly tokenId?: string;
  /** Issue time (`iat`), Unix seconds; now by default. */
  readonly issuedAt?: number;
}

/**
 * Signs a Relais token with an HS256 secret (RELAIS_TOKEN_SECRET). For backends that mint
 * tokens for their users, tests, and development; browsers never see the secret.
 */
export async function mintToken(secret: string, claims: TokenClaims): Promise<string> {
  const payload: Record<string, unknown> = {};
  if (claims.info !== undefined) payload['info'] = claims.info;
  if (claims.channels !== undefined) payload['channels'] = claims.channels;
  if (claims.channel !== undefined) payload['channel'] = claims.channel;
  let jwt = new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(claims.user).setIssuedAt(claims.issuedAt);
  if (claims.tokenId !== undefined) jwt = jwt.setJti(claims.tokenId);
  const ttl = claims.ttlSeconds ?? 3600;
  if (ttl > 0) jwt = jwt.setExpirationTime(Math.floor(Date.now() / 1000) + ttl);
  return jwt.sign(new TextEncoder().encode(secret));
}
