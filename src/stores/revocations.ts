/**
 * Revocations kept by the durable store: blocked users and revoked connection tokens. Their
 * tables form the `access` migration component of each dialect, apart from the store's own
 * tables.
 */
import type { MigrationSet } from './migrations.js';

/**
 * One revocation:
 * - `user`: the user `key` is blocked;
 * - `token`: the token whose `jti` is `key` is revoked;
 * - `user_tokens`: the tokens of user `key` issued before `issuedBefore` are revoked;
 * - `channel_tokens`: the subscription tokens of a user for a channel issued before
 *   `issuedBefore` are revoked; `key` is the JSON array `[user, channel]`.
 */
export interface Revocation {
  readonly kind: 'user' | 'token' | 'user_tokens' | 'channel_tokens';
  /** User id, token id, or `[user, channel]` JSON, 1 to 1024 characters. */
  readonly key: string;
  /** For `user_tokens` and `channel_tokens`: Unix ms; tokens whose `iat` is before it are refused. 0 otherwise. */
  readonly issuedBefore: number;
  /** Unix ms after which the entry is forgotten; 0 keeps it until removed. */
  readonly expiresAt: number;
}

const TABLE = `CREATE TABLE revocations (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  issued_before BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (kind, key)
)`;

export const sqliteRevocationMigrations: MigrationSet = {
  component: 'access',
  migrations: [{ version: 1, name: 'revocations', sql: `${TABLE.replace(/BIGINT/g, 'INTEGER')} WITHOUT ROWID;` }],
};

export const postgresRevocationMigrations: MigrationSet = {
  component: 'access',
  migrations: [{ version: 1, name: 'revocations', sql: `${TABLE.replace(/TEXT/g, 'text COLLATE "C"').replace(/BIGINT/g, 'bigint')};` }],
};
