import { createPublicKey, webcrypto } from 'node:crypto';
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors as joseErrors,
  importSPKI,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import type { ConnectionClaims, SubscriptionClaims, TokenVerifier } from '../core/auth.js';
import { TokenError } from '../core/auth.js';
import { toJsonText, type JsonText } from '../core/json.js';
import type { RelaisConfig } from '../config/schema.js';

type Key = Uint8Array | Awaited<ReturnType<typeof importSPKI>>;

interface KeyChoice {
  readonly key: Key | JWTVerifyGetKey;
  readonly algorithms: string[];
}

const VERIFIED_CACHE_SIZE = 10_000;

const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'];

/**
 * Verifies connection and subscription JWTs with jose. The algorithms a key accepts are
 * fixed by the key's kind (HMAC secret: HS256 only; RSA key: RS256; EC key: ES256), so
 * `alg: none` and HS/RS confusion are refused whatever the token header says.
 */
export class JwtVerifier implements TokenVerifier {
  /** Connection tokens verified lately, oldest first; a token's claims are fixed by its signature. */
  private readonly verified = new Map<string, ConnectionClaims>();

  private constructor(
    private readonly hmac: KeyChoice | undefined,
    private readonly asymmetric: KeyChoice | undefined,
    private readonly options: { audience?: string; issuer?: string },
  ) {}

  static async create(config: RelaisConfig['token']): Promise<JwtVerifier> {
    // Imported once: jose would otherwise import a raw secret on every verification.
    const hmac = config.hmac_secret
      ? {
          key: await webcrypto.subtle.importKey('raw', new TextEncoder().encode(config.hmac_secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']),
          algorithms: ['HS256'],
        }
      : undefined;
    let asymmetric: KeyChoice | undefined;
    if (config.public_key) {
      const kind = createPublicKey(config.public_key).asymmetricKeyType;
      const alg = kind === 'rsa' ? 'RS256' : kind === 'ec' ? 'ES256' : undefined;
      if (!alg) throw new Error(`token.public_key: unsupported key type "${kind ?? 'unknown'}" (use RSA for RS256 or EC P-256 for ES256)`);
      asymmetric = { key: await importSPKI(config.public_key, alg), algorithms: [alg] };
    } else if (config.jwks_url) {
      asymmetric = { key: createRemoteJWKSet(new URL(config.jwks_url), { cooldownDuration: 30_000 }), algorithms: JWKS_ALGORITHMS };
    }
    const options: { audience?: string; issuer?: string } = {};
    if (config.audience) options.audience = config.audience;
    if (config.issuer) options.issuer = config.issuer;
    return new JwtVerifier(hmac, asymmetric, options);
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
    const info = infoClaim(payload);
    if (info !== undefined) claims.info = info;
    return claims;
  }

  private async verify(token: string): Promise<JWTPayload> {
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (err) {
      throw new TokenError('invalid', 'malformed token', { cause: err });
    }
    const choice = alg?.startsWith('HS') ? this.hmac : this.asymmetric;
    if (!choice) throw new TokenError('invalid', `no key configured for algorithm "${alg ?? 'none'}"`);
    try {
      const options = { ...this.options, algorithms: choice.algorithms };
      const { payload } =
        typeof choice.key === 'function' ? await jwtVerify(token, choice.key, options) : await jwtVerify(token, choice.key, options);
      return payload;
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new TokenError('expired', 'token expired', { cause: err });
      throw new TokenError('invalid', err instanceof Error ? err.message : 'invalid token', { cause: err });
    }
  }
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
