/**
 * Whether a request's Origin is allowed. An empty list allows every origin; a request
 * without an Origin header (not from a browser) is allowed, since origins only guard
 * browsers against cross-site use of their credentials.
 */
export function isOriginAllowed(origin: string | undefined, allowed: readonly string[]): boolean {
  if (allowed.length === 0 || origin === undefined) return true;
  const normalized = origin.replace(/\/$/, '').toLowerCase();
  return allowed.some((a) => a === '*' || a.replace(/\/$/, '').toLowerCase() === normalized);
}
