/** Field checks shared by the bus codecs: a message from the bus is trusted for nothing. */

export function nonNegativeInt(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new Error(`bad ${field}`);
  return value;
}

export function str(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new Error(`bad ${field}`);
  return value;
}
