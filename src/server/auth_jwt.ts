import { createPublicKey } from 'node:crypto';
import { createVerifier, TokenError as FastJwtError } from 'fast-jwt';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import type { ConnectionClaims, SubscriptionClaims, TokenVerifier } from '../core/auth.js';
import { TokenError } from '../core/auth.js';
import { toJsonText, type JsonText } from '../core/json.js';
import type { RelaisConfig } from '../config/schema.js';

/**
 * How tokens of one family of algorithms are checked: a static key (HMAC secret, PEM public
 * key) by fast-jwt's synchronous verifier, a remote key set (JWKS) by jose, which fetches
 * and rotates keys. Both check the signature, `exp`, `nbf`, `aud` and `iss`.
 */
type KeyChoice = { readonly kind: 'static'; readonly verify: (token: string) => JWTPayload } | { readonly kind: 'jwks'; readonly verify: (token: string) => Promise<JWTPayload> };

type Jose = typeof import('jose');

const VERIFIED_CACHE_SIZE = 10_000;

const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'];

/**
 * Verifies connection and subscription JWTs. The algorithms a key accepts are fixed by the
 * key's kind (HMAC secret: HS256 only; RSA key: RS256; EC key: ES256), so `alg: none` and
 * HS/RS confusion are refused whatever the token header says.
 *
 * Static keys go through fast-jwt's synchronous node:crypto path: after a deploy every
 * client reconnects at once with a token this instance has never seen, and jose's WebCrypto
 * path cost 4-8x the CPU per HS256 token (bench/jwt, docs/performance.md).
 */
export class JwtVerifier implements TokenVerifier {
  /** Connection tokens verified lately, oldest first; a token's claims are fixed by its signature. */
  private readonly verified = new Map<string, ConnectionClaims>();

  private constructor(
    private readonly hmac: KeyChoice | undefined,
    private readonly asymmetric: KeyChoice | undefined,
  ) {}

  static create(config: RelaisConfig['token']): JwtVerifier {
    const options: { audience?: string; issuer?: string } = {};
    if (config.audience) options.audience = config.audience;
    if (config.issuer) options.issuer = config.issuer;
    const hmac = config.hmac_secret ? staticKey(config.hmac_secret, 'HS256', options) : undefined;
    let asymmetric: KeyChoice | undefined;
    if (config.public_key) {
      const kind = createPublicKey(config.public_key).asymmetricKeyType;
      const alg = kind === 'rsa' ? 'RS256' : kind === 'ec' ? 'ES256' : undefined;
      if (!alg) throw new Error(`token.public_key: unsupported key type "${kind ?? 'unknown'}" (use RSA for RS256 or EC P-256 for ES256)`);
      asymmetric = staticKey(config.public_key, alg, options);
    } else if (config.jwks_url) {
      asymmetric = remoteKeySet(new URL(config.jwks_url), options);
    }
    return new JwtVerifier(hmac, asymmetric);
  }

  async verifyConnection(token: string): Promise<ConnectionClaims> {
    const cached = this.verified.get(token);
    if (cached) {
      if (cached.expiresAt === undefined || cached.expiresAt > Date.now()) return cached;
      this.verified.delete(token);
      throw new TokenError('expired', 'token expired');
    }
    const claims = await this.verifyConnectionUncached(token);
    // Clients present the same token on every reconnect: a burst of reconnections (a deploy,
    // a network blip) then costs one signature check per token, not per connection.
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(token, claims);
    return claims;
  }

  private async verifyConnectionUncached(token: string): Promise<ConnectionClaims> {
    const payload = await this.verify(token);
    if (payload['channel'] !== undefined) throw new TokenError('invalid', 'a subscription token cannot open a connection');
    const claims: { -readonly [K in keyof ConnectionClaims]: ConnectionClaims[K] } = { user: subject(payload) };
    if (payload.exp !== undefined) claims.expiresAt = payload.exp * 1000;
    if (typeof payload.jti === 'string' && payload.jti !== '') claims.tokenId = payload.jti;
    if (typeof payload.iat === 'number') claims.issuedAt = payload.iat * 1000;
    const info = infoClaim(payload);
    if (info !== undefined) claims.info = info;
    const channels = payload['channels'];
    if (channels !== undefined) {
      if (!Array.isArray(channels) || !channels.every((c) => typeof c === 'string')) {
        throw new TokenError('invalid', 'claim "channels" must be an array of strings');
      }
      claims.channels = channels;
    }
    return claims;
  }

  async verifySubscription(token: string): Promise<SubscriptionClaims> {
    const payload = await this.verify(token);
    const channel = payload['channel'];
    if (typeof channel !== 'string' || channel === '') throw new TokenError('invalid', 'subscription token needs a "channel" claim');
    const claims: { -readonly [K in keyof SubscriptionClaims]: SubscriptionClaims[K] } = { user: subject(payload), channel };
    if (payload.exp !== undefined) claims.expiresAt = payload.exp * 1000;
    if (typeof payload.iat === 'number') claims.issuedAt = payload.iat * 1000;
    const info = infoClaim(payload);
    if (info !== undefined) claims.info = info;
    return claims;
  }

  private async verify(token: string): Promise<JWTPayload> {
    const alg = headerAlgorithm(token);
    const choice = alg?.startsWith('HS') ? this.hmac : this.asymmetric;
    if (!choice) throw new TokenError('invalid', `no key configured for algorithm "${alg ?? 'none'}"`);
    try {
      return choice.kind === 'static' ? choice.verify(token) : await choice.verify(token);
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if ((err instanceof FastJwtError && err.code === FastJwtError.codes.expired) || (err instanceof Error && 'code' in err && err.code === 'ERR_JWT_EXPIRED')) {
        throw new TokenError('expired', 'token expired', { cause: err });
      }
      throw new TokenError('invalid', err instanceof Error ? err.message : 'invalid token', { cause: err });
    }
  }
}

/**
 * The `alg` of a compact JWT's protected header (undefined when it names none). Read here
 * rather than through jose, so that a node without a JWKS URL never loads jose.
 */
function headerAlgorithm(token: string): string | undefined {
  const dot = token.indexOf('.');
  let header: unknown;
  try {
    if (dot <= 0) throw new Error('no header segment');
    header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8'));
  } catch (err) {
    throw new TokenError('invalid', 'malformed token', { cause: err });
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new TokenError('invalid', 'malformed token');
  const alg = (header as { alg?: unknown }).alg;
  return typeof alg === 'string' ? alg : undefined;
}

/**
 * Keys fetched from a JWKS URL by jose, imported with the first token that needs them (jose
 * costs some MB of memory that a node verifying with static keys does not pay).
 */
function remoteKeySet(url: URL, options: { audience?: string; issuer?: string }): KeyChoice {
  let loading: Promise<{ jose: Jose; keySet: JWTVerifyGetKey }> | undefined;
  return {
    kind: 'jwks',
    async verify(token) {
      loading ??= import('jose').then((jose) => ({ jose, keySet: jose.createRemoteJWKSet(url, { cooldownDuration: 30_000 }) }));
      const { jose, keySet } = await loading;
      return (await jose.jwtVerify(token, keySet, { ...options, algorithms: JWKS_ALGORITHMS })).payload;
    },
  };
}

function staticKey(key: string, algorithm: 'HS256' | 'RS256' | 'ES256', options: { audience?: string; issuer?: string }): KeyChoice {
  const verify = createVerifier({
    key,
    algorithms: [algorithm],
    // JwtVerifier keeps its own cache of verified connection tokens.
    cache: false,
    ...(options.audience !== undefined ? { allowedAud: options.audience } : {}),
    ...(options.issuer !== undefined ? { allowedIss: options.issuer } : {}),
  });
  return { kind: 'static', verify: (token) => verify(token) as JWTPayload };
}

function subject(payload: JWTPayload): string {
  if (payload.sub === undefined) return '';
  if (typeof payload.sub !== 'string') throw new TokenError('invalid', 'claim "sub" must be a string');
  return payload.sub;
}

function infoClaim(payload: JWTPayload): JsonText | undefined {
  const info = payload['info'];
  return info === undefined ? undefined : toJsonText(info);
}
