import { RelaisError } from './errors.js';

/**
 * A JSON value kept as its serialized text. Publication data is validated and serialized
 * once where it enters Relais, then embedded verbatim in every frame that carries it:
 * the delivery path never serializes a payload again.
 */
export type JsonText = string & { readonly __jsonText: unique symbol };

/** Serializes a value that came out of JSON.parse (or is otherwise JSON-safe). */
export function toJsonText(value: unknown): JsonText {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    // Nesting deep enough to exhaust the stack, or a BigInt: refused, never a crash.
    throw new RelaisError('BAD_REQUEST', 'data cannot be serialized as JSON', { cause: err });
  }
  if (text === undefined) throw new RelaisError('BAD_REQUEST', 'data is not a JSON value');
  return text as JsonText;
}

/** Validates a JSON document given as text; throws BAD_REQUEST when it does not parse. */
export function parseJsonText(text: string): JsonText {
  try {
    JSON.parse(text);
  } catch (err) {
    throw new RelaisError('BAD_REQUEST', 'data is not valid JSON', { cause: err });
  }
  return text as JsonText;
}

/** Byte length of a JSON text in UTF-8, for size limits. */
export function jsonByteLength(text: JsonText): number {
  return Buffer.byteLength(text, 'utf8');
}
