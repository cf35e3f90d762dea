/**
 * Versioned schema migrations. Each component (the store's own tables, later each feature's)
 * has its own sequence of versions from 1, recorded in `schema_migrations`; a store applies
 * the ones a database lacks at start-up, under a lock that makes concurrent instances wait
 * for each other, and refuses a database that a newer Relais migrated further.
 */

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** The dialect's statements, fixed text: migrations take no values. */
  readonly sql: string;
}

export interface MigrationSet {
  /** Lowercase name, e.g. "store" or a feature's name. */
  readonly component: string;
  /** Versions 1, 2, 3... in order. */
  readonly migrations: readonly Migration[];
}

/** Throws when a set is malformed: a programming error, caught by the first test that migrates. */
export function checkMigrationSets(sets: readonly MigrationSet[]): void {
  const components = new Set<string>();
  for (const set of sets) {
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(set.component)) throw new Error(`migration component "${set.component}": lowercase letters, digits and "_"`);
    if (components.has(set.component)) throw new Error(`migration component "${set.component}" given twice`);
    components.add(set.component);
    set.migrations.forEach((m, i) => {
      if (m.version !== i + 1) throw new Error(`migration ${set.component}/${m.name}: expected version ${i + 1}, got ${m.version}`);
    });
  }
}

/** The refusal when the database is ahead of this code. */
export function newerDatabaseMessage(component: string, databaseVersion: number, codeVersion: number): string {
  return (
    `the database schema of "${component}" is at version ${databaseVersion}, newer than this Relais knows (${codeVersion}): ` +
    'it was migrated by a newer Relais. Run that version, or restore a backup taken before the upgrade; nothing was changed'
  );
}

/** A database this code must not run on (newer schema, missing PostgreSQL schema): start-up stops with its message. */
export class SchemaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaError';
  }
}

/** The migrations a database at `databaseVersion` lacks; SchemaError when it is ahead of the code. */
export function pendingMigrations(set: MigrationSet, databaseVersion: number): readonly Migration[] {
  const codeVersion = set.migrations.length;
  if (databaseVersion > codeVersion) throw new SchemaError(newerDatabaseMessage(set.component, databaseVersion, codeVersion));
  return set.migrations.slice(databaseVersion);
}
