/**
 * Numeric codes of the Centrifugo client protocol v2, as the `centrifuge` SDKs read them.
 * Error codes travel in command replies; disconnect codes in `disconnect` pushes and
 * WebSocket close frames; unsubscribe codes in `unsubscribe` pushes.
 */

/** Error codes of replies. A client retries a command whose error is `temporary`. */
export const ErrorCode = {
  internal: 100,
  unauthorized: 101,
  unknownChannel: 102,
  permissionDenied: 103,
  methodNotFound: 104,
  alreadySubscribed: 105,
  limitExceeded: 106,
  badRequest: 107,
  notAvailable: 108,
  tokenExpired: 109,
  expired: 110,
  tooManyRequests: 111,
  unrecoverablePosition: 112,
} as const;

export type ErrorCodeNumber = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Disconnect codes. The range tells the client what to do:
 * 3000-3499 and 4000-4499 reconnect; 3500-3999 and 4500-4999 are terminal (no reconnect).
 */
export const DisconnectCode = {
  connectionClosed: 3000,
  shutdown: 3001,
  internalError: 3004,
  expired: 3005,
  subscriptionExpired: 3006,
  slow: 3008,
  writeError: 3009,
  insufficientState: 3010,
  forceReconnect: 3011,
  noPong: 3012,
  tooManyRequests: 3013,
  invalidToken: 3500,
  badRequest: 3501,
  stale: 3502,
  forceNoReconnect: 3503,
  connectionLimit: 3504,
  channelLimit: 3505,
  permissionDenied: 3507,
  tooManyErrors: 3509,
} as const;

export type DisconnectCodeNumber = (typeof DisconnectCode)[keyof typeof DisconnectCode];

/** Whether a client reconnects after this disconnect code. */
export function isReconnectCode(code: number): boolean {
  return !((code >= 3500 && code < 4000) || (code >= 4500 && code < 5000));
}

/**
 * Unsubscribe push codes: below 2500 the subscription ends; from 2500 the client
 * subscribes again (recovering from its position where the channel allows it).
 */
export const UnsubscribeCode = {
  server: 2000,
  insufficientState: 2500,
  expired: 2501,
} as const;
