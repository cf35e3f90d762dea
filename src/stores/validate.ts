/**
 * Argument checks shared by the stores, so that both refuse the same input with the same
 * BAD_REQUEST before anything reaches a database: PostgreSQL cannot hold NUL characters in
 * text, and SQLite would store an unpaired surrogate as U+FFFD, so neither could keep such a
 * string byte for byte.
 */
import { RelaisError } from '../core/errors.js';
import type { Revocation } from './revocations.js';
import type { AppendRequest } from './store.js';

export const MAX_NAME_LENGTH = 1024;
export const MAX_KEY_LENGTH = 256;
export const MAX_TAGS = 64;
export const MAX_LIMIT = 10_000;

// An unpaired high surrogate, an unpaired low surrogate, or NUL (matched on purpose).
// eslint-disable-next-line no-control-regex
const UNSTORABLE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|\u0000/;

function bad(message: string): RelaisError {
  return new RelaisError('BAD_REQUEST', message);
}

/** A string a store can keep byte for byte, `min` to `max` characters long. */
export function checkText(what: string, value: unknown, min: number, max: number): string {
  if (typeof value !== 'string') throw bad(`${what} must be a string`);
  if (value.length < min || value.length > max) throw bad(`${what} must be ${min} to ${max} characters long`);
  if (UNSTORABLE.test(value)) throw bad(`${what} contains a NUL character or an unpaired surrogate`);
  return value;
}

export function checkName(what: string, value: unknown): string {
  return checkText(what, value, 1, MAX_NAME_LENGTH);
}

/** A user id: may be empty (anonymous publisher), never absent. */
export function checkUser(what: string, value: unknown): string {
  return checkText(what, value, 0, MAX_NAME_LENGTH);
}

/** A non-negative safe integer (offsets, Unix milliseconds). */
export function checkInteger(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw bad(`${what} must be a whole number, 0 or more`);
  return value;
}

export function checkLimit(what: string, value: unknown, max = MAX_LIMIT): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) throw bad(`${what} must be a whole number from 1 to ${max}`);
  return value;
}

/** Checks every field of an append request; throws BAD_REQUEST naming the first bad one. */
export function checkAppendRequest(request: AppendRequest, index: number): void {
  const at = `append request ${index}`;
  if (typeof request !== 'object' || request === null) throw bad(`${at}: expected an object`);
  checkName(`${at}: channel`, request.channel);
  if (typeof request.data !== 'string' || request.data.length === 0) throw bad(`${at}: data must be non-empty JSON text`);
  checkText(`${at}: data`, request.data, 1, Number.MAX_SAFE_INTEGER);
  checkInteger(`${at}: time`, request.time);
  if (request.idempotencyKey !== undefined) checkText(`${at}: idempotencyKey`, request.idempotencyKey, 1, MAX_KEY_LENGTH);
  if (request.tempId !== undefined) checkText(`${at}: tempId`, request.tempId, 1, MAX_KEY_LENGTH);
  const info = request.info;
  if (info !== undefined) {
    if (typeof info !== 'object' || info === null) throw bad(`${at}: info must be an object`);
    checkUser(`${at}: info.user`, info.user);
    checkText(`${at}: info.client`, info.client, 0, MAX_NAME_LENGTH);
    if (info.connInfo !== undefined) checkText(`${at}: info.connInfo`, info.connInfo, 1, Number.MAX_SAFE_INTEGER);
    if (info.chanInfo !== undefined) checkText(`${at}: info.chanInfo`, info.chanInfo, 1, Number.MAX_SAFE_INTEGER);
  }
  const tags = request.tags;
  if (tags !== undefined) {
    if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) throw bad(`${at}: tags must be an object of strings`);
    const entries = Object.entries(tags);
    if (entries.length > MAX_TAGS) throw bad(`${at}: at most ${MAX_TAGS} tags`);
    for (const [key, value] of entries) {
      checkText(`${at}: tag name`, key, 1, MAX_KEY_LENGTH);
      checkText(`${at}: tag ${key}`, value, 0, Number.MAX_SAFE_INTEGER);
    }
  }
}

const REVOCATION_KINDS: ReadonlySet<string> = new Set(['user', 'token', 'user_tokens', 'channel_tokens']);

export function checkRevocation(revocation: Revocation): Revocation {
  if (!REVOCATION_KINDS.has(revocation.kind)) throw new RelaisError('BAD_REQUEST', `revocation kind "${String(revocation.kind)}" unknown`);
  checkName('key', revocation.key);
  checkInteger('issuedBefore', revocation.issuedBefore);
  checkInteger('expiresAt', revocation.expiresAt);
  return revocation;
}
