/** Relais version, reported by the `info` API and the connect reply. Kept in step with package.json. */
export const VERSION = '0.1.0';
