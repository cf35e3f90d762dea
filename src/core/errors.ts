import { DisconnectCode, ErrorCode } from '../protocol/codes.js';

/**
 * Stable error codes of Relais. Each has one wire code (client protocol), one HTTP status
 * (server API) and a temporary flag; docs/errors.md explains each with its fix.
 */
export const errorTable = {
  INTERNAL: { wire: ErrorCode.internal, http: 500, temporary: true, message: 'internal server error' },
  UNAUTHORIZED: { wire: ErrorCode.unauthorized, http: 401, temporary: false, message: 'unauthorized' },
  UNKNOWN_CHANNEL: { wire: ErrorCode.unknownChannel, http: 404, temporary: false, message: 'unknown channel' },
  CHANNEL_INVALID: { wire: ErrorCode.badRequest, http: 400, temporary: false, message: 'invalid channel name' },
  FORBIDDEN: { wire: ErrorCode.permissionDenied, http: 403, temporary: false, message: 'permission denied' },
  METHOD_NOT_FOUND: { wire: ErrorCode.methodNotFound, http: 404, temporary: false, message: 'method not found' },
  ALREADY_SUBSCRIBED: { wire: ErrorCode.alreadySubscribed, http: 409, temporary: false, message: 'already subscribed' },
  LIMIT_EXCEEDED: { wire: ErrorCode.limitExceeded, http: 413, temporary: false, message: 'limit exceeded' },
  BAD_REQUEST: { wire: ErrorCode.badRequest, http: 400, temporary: false, message: 'bad request' },
  // Same wire code as BAD_REQUEST (the SDKs know no other): the message names the field.
  UNSUPPORTED: { wire: ErrorCode.badRequest, http: 400, temporary: false, message: 'not supported by Relais' },
  NODE_NOT_FOUND: { wire: ErrorCode.notAvailable, http: 404, temporary: false, message: 'node not found' },
  NOT_AVAILABLE: { wire: ErrorCode.notAvailable, http: 404, temporary: false, message: 'not available' },
  TOKEN_EXPIRED: { wire: ErrorCode.tokenExpired, http: 401, temporary: false, message: 'token expired' },
  EXPIRED: { wire: ErrorCode.expired, http: 401, temporary: false, message: 'expired' },
  RATE_LIMITED: { wire: ErrorCode.tooManyRequests, http: 429, temporary: true, message: 'too many requests' },
  UNRECOVERABLE_POSITION: {
    wire: ErrorCode.unrecoverablePosition,
    http: 409,
    temporary: false,
    message: 'unrecoverable position',
  },
  BROKER_UNAVAILABLE: { wire: ErrorCode.internal, http: 503, temporary: true, message: 'message bus unavailable' },
  // 100 is the only server code Centrifugo itself marks temporary; the SDKs keep codes below
  // 100 for their own client-side errors, so the temporary flag is what makes them retry.
  STORE_UNAVAILABLE: { wire: ErrorCode.internal, http: 503, temporary: true, message: 'store unavailable' },
  // The app backend's proxy could not answer (down, slow past its timeout, not its JSON).
  PROXY_UNAVAILABLE: { wire: ErrorCode.internal, http: 503, temporary: true, message: 'app backend unavailable' },
  // The app backend's proxy answered `error`: the client gets the backend's own code and message.
  PROXY_REFUSED: { wire: ErrorCode.permissionDenied, http: 403, temporary: false, message: 'refused by the app backend' },
  ROOM_NOT_FOUND: { wire: ErrorCode.unknownChannel, http: 404, temporary: false, message: 'room not found' },
  ROOM_EXISTS: { wire: ErrorCode.badRequest, http: 409, temporary: false, message: 'room already exists' },
} as const;

export type RelaisErrorCode = keyof typeof errorTable;

/** The one error type of Relais: a stable string code, its wire and HTTP mapping, and a cause. */
export class RelaisError extends Error {
  readonly code: RelaisErrorCode;
  /** A wire code other than the table's: the app backend's own code (PROXY_REFUSED). */
  private readonly ownWireCode: number | undefined;

  constructor(code: RelaisErrorCode, message?: string, options?: { cause?: unknown; wireCode?: number }) {
    super(message ?? errorTable[code].message, options);
    this.name = 'RelaisError';
    this.code = code;
    this.ownWireCode = options?.wireCode;
  }

  get wireCode(): number {
    return this.ownWireCode ?? errorTable[this.code].wire;
  }

  get httpStatus(): number {
    return errorTable[this.code].http;
  }

  get temporary(): boolean {
    return errorTable[this.code].temporary;
  }
}

/** Any thrown value as a RelaisError: unknown failures become INTERNAL, keeping the cause. */
export function toRelaisError(err: unknown): RelaisError {
  if (err instanceof RelaisError) return err;
  return new RelaisError('INTERNAL', undefined, { cause: err });
}

/** A disconnect: code and short reason (under 123 bytes, the WebSocket close frame limit). */
export interface Disconnect {
  readonly code: number;
  readonly reason: string;
}

export const Disconnects = {
  connectionClosed: { code: DisconnectCode.connectionClosed, reason: 'connection closed' },
  shutdown: { code: DisconnectCode.shutdown, reason: 'shutdown' },
  internalError: { code: DisconnectCode.internalError, reason: 'internal server error' },
  expired: { code: DisconnectCode.expired, reason: 'connection expired' },
  slow: { code: DisconnectCode.slow, reason: 'slow' },
  writeError: { code: DisconnectCode.writeError, reason: 'write error' },
  insufficientState: { code: DisconnectCode.insufficientState, reason: 'insufficient state' },
  forceReconnect: { code: DisconnectCode.forceReconnect, reason: 'force reconnect' },
  noPong: { code: DisconnectCode.noPong, reason: 'no pong' },
  tooManyRequests: { code: DisconnectCode.tooManyRequests, reason: 'too many requests' },
  invalidToken: { code: DisconnectCode.invalidToken, reason: 'invalid token' },
  badRequest: { code: DisconnectCode.badRequest, reason: 'bad request' },
  stale: { code: DisconnectCode.stale, reason: 'stale' },
  forceNoReconnect: { code: DisconnectCode.forceNoReconnect, reason: 'force disconnect' },
  userBlocked: { code: DisconnectCode.forceNoReconnect, reason: 'user blocked' },
  tokenRevoked: { code: DisconnectCode.invalidToken, reason: 'token revoked' },
  connectionLimit: { code: DisconnectCode.connectionLimit, reason: 'connection limit' },
  channelLimit: { code: DisconnectCode.channelLimit, reason: 'channel limit' },
  permissionDenied: { code: DisconnectCode.permissionDenied, reason: 'permission denied' },
  tooManyErrors: { code: DisconnectCode.tooManyErrors, reason: 'too many errors' },
} as const satisfies Record<string, Disconnect>;

/** Thrown by a command handler to end the connection instead of replying with an error. */
export class DisconnectError extends Error {
  readonly disconnect: Disconnect;

  constructor(disconnect: Disconnect, options?: { cause?: unknown }) {
    super(disconnect.reason, options);
    this.name = 'DisconnectError';
    this.disconnect = disconnect;
  }
}
