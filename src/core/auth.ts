import type { JsonText } from './json.js';

/** What a verified connection token says. */
export interface ConnectionClaims {
  /** User id; '' for an anonymous connection. */
  readonly user: string;
  /** Unix ms when the connection must refresh its token; undefined when it never expires. */
  readonly expiresAt?: number;
  /** Connection info shown in presence, join/leave and publications (`info` claim). */
  readonly info?: JsonText;
  /** Server-side subscriptions made at connect (`channels` claim). */
  readonly channels?: readonly string[];
  /** The token's id (`jti` claim), by which it can be revoked. */
  readonly tokenId?: string;
  /** Unix ms when the token was issued (`iat` claim); tokens of a user issued before a time can be revoked. */
  readonly issuedAt?: number;
}

/** What identifies the token a connection was opened with, for revocations. */
export type TokenIdentity = Pick<ConnectionClaims, 'user' | 'tokenId' | 'issuedAt'>;

/** What a verified subscription token says. */
export interface SubscriptionClaims {
  readonly user: string;
  readonly channel: string;
  readonly expiresAt?: number;
  /** Unix ms of the `iat` claim, when the token has one (checked against invalidate_user_tokens with a channel). */
  readonly issuedAt?: number;
  /** Channel info (`info` claim), carried as chan_info. */
  readonly info?: JsonText;
}

/** Why a token was refused: `expired` lets the client fetch a new one; `invalid` does not. */
export class TokenError extends Error {
  constructor(
    readonly reason: 'expired' | 'invalid',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TokenError';
  }
}

/** Verifies JWTs. Throws TokenError. */
export interface TokenVerifier {
  verifyConnection(token: string): Promise<ConnectionClaims>;
  verifySubscription(token: string): Promise<SubscriptionClaims>;
}
