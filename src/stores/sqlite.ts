/**
 * A {@link Store} in one SQLite table: durable, shared by every process on the machine, and with no
 * server to run. Works with `better-sqlite3` (an optional peer dependency) or, on Node 22.5+, the
 * built-in `node:sqlite`.
 *
 * Subpath: `tessera/sqlite`.
 *
 * @module
 */

import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { SessionConfigError, StoreError } from '../errors.js'
import type { CleanupOptions, KeyedStoreRecord, Store, StoreRecord, StoreStats } from '../store.js'

/**
 * The part of a prepared statement the store uses; both drivers' statements have it. Parameters are
 * `unknown` so that each driver's own, stricter parameter types still fit; the store binds only strings,
 * numbers and null.
 */
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number | bigint }
  get(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
}

/**
 * The part of a SQLite connection the store uses. A `better-sqlite3` `Database` and a `node:sqlite`
 * `DatabaseSync` both fit, so neither driver's types are needed to use the store.
 */
export interface SqliteDatabase {
  prepare(sql: string): SqliteStatement
  exec(sql: string): unknown
  close(): unknown
}

/**
 * Options for `new SqliteStore()`, which uses a connection you opened and still own.
 *
 * @example
 * ```ts
 * import Database from 'better-sqlite3'
 * const db = new Database('app.db')
 * const store = new SqliteStore({ database: db, table: 'web_sessions' })
 * ```
 */
export interface SqliteStoreOptions {
  /** An open `better-sqlite3` Database or `node:sqlite` DatabaseSync. `close()` leaves it open. */
  database: SqliteDatabase
  /**
   * Table holding the sessions, created if missing. It must match `/^[A-Za-z_][A-Za-z0-9_]{0,62}$/`,
   * because a table name cannot be a bound parameter. Give each store its own table.
   * @default 'tessera_sessions'
   */
  table?: string | undefined
  /**
   * How often the background sweep deletes expired rows, in milliseconds. `0` disables the timer (run
   * {@link SqliteStore.cleanup} from a job instead). The timer never keeps the process alive.
   * @default 300_000
   */
  cleanupIntervalMs?: number | undefined
  /**
   * Rows deleted per statement by {@link SqliteStore.cleanup}. Each batch is its own short transaction,
   * so a large backlog never holds the write lock for long.
   * @default 1000
   */
  cleanupBatchSize?: number | undefined
  /**
   * Clock for the timer-driven sweep, in epoch milliseconds. Every other method takes `now` from the caller.
   * @default Date.now
   */
  clock?: (() => number) | undefined
  /**
   * Called when a timer-driven sweep fails; the next run tries again. Calls you make yourself reject instead.
   * @default emits a process warning
   */
  onCleanupError?: ((error: StoreError) => void) | undefined
}

/**
 * Options for {@link SqliteStore.open}, which opens (and on close, closes) a database file itself.
 *
 * @example
 * ```ts
 * const store = await SqliteStore.open({ path: './data/sessions.db' })
 * ```
 */
export interface SqliteStoreOpenOptions extends Omit<SqliteStoreOptions, 'database'> {
  /** Database file, created along with its parent directory if missing; `':memory:'` for a private in-memory one. */
  path: string
}

const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/
const DEFAULT_TABLE = 'tessera_sessions'
const MAX_TIMER_DELAY = 2_147_483_647
/** Databases opened by {@link SqliteStore.open}: only these does the store configure and close. */
const ownedDatabases = new WeakSet<SqliteDatabase>()

interface Row {
  readonly key: string
  readonly data: string
  readonly expires_at: number | bigint
  readonly version: number | bigint
  readonly user_id: string | null
}

interface Statements {
  readonly get: SqliteStatement
  readonly create: SqliteStatement
  readonly update: SqliteStatement
  readonly touch: SqliteStatement
  readonly destroy: SqliteStatement
  readonly listByUser: SqliteStatement
  readonly destroyByUser: SqliteStatement
  readonly cleanup: SqliteStatement
  readonly stats: SqliteStatement
}

/** Options for {@link sqliteSchemaSql}. */
export interface SqliteSchemaOptions {
  /** @default 'tessera_sessions' */
  table?: string | undefined
}

/**
 * The SQL that creates the store's table and indexes: exactly what {@link SqliteStore} runs when it opens
 * (`tessera migrate --print` shows it). Idempotent: every statement is `IF NOT EXISTS`.
 *
 * @example
 * ```ts
 * import { sqliteSchemaSql } from 'tessera/sqlite'
 * database.exec(sqliteSchemaSql({ table: 'web_sessions' }))
 * ```
 *
 * @throws {SessionConfigError} when `table` is not a plain identifier.
 */
export function sqliteSchemaSql(options: SqliteSchemaOptions = {}): string {
  const { table = DEFAULT_TABLE } = options
  checkTable(table)
  return schemaSql(table)
}

/**
 * A {@link Store} backed by one SQLite table: `key` (primary key), `data`, `expires_at`, `version` and
 * `user_id`, indexed on `expires_at` and `user_id`. Every write is a single statement, so compare-and-set
 * holds across processes sharing the file.
 *
 * @example
 * ```ts
 * import { SqliteStore } from 'tessera/sqlite'
 *
 * // The store opens the file (WAL mode) and closes it on close():
 * const store = await SqliteStore.open({ path: './data/sessions.db' })
 *
 * // Or bring your own connection, which close() leaves open:
 * const shared = new SqliteStore({ database: new Database('app.db') })
 * ```
 *
 * @throws {SessionConfigError} from the constructor when an option is invalid.
 * @throws {StoreError} from the constructor when the table cannot be created.
 */
export class SqliteStore implements Store {
  readonly #database: SqliteDatabase
  readonly #ownsDatabase: boolean
  readonly #sql: Statements
  readonly #cleanupBatchSize: number
  #timer: ReturnType<typeof setInterval> | undefined
  #sweeping = false
  #closed = false

  /**
   * Opens the database file at `options.path` with the first driver available: `better-sqlite3`, else
   * `node:sqlite` (Node 22.5+). The store owns this connection: it turns on WAL mode and closes it on
   * {@link SqliteStore.close}.
   *
   * @example
   * ```ts
   * const store = await SqliteStore.open({ path: './data/sessions.db', cleanupIntervalMs: 60_000 })
   * ```
   *
   * @throws {SessionConfigError} when an option is invalid or no driver is installed.
   * @throws {StoreError} when the file cannot be opened.
   */
  static async open(options: SqliteStoreOpenOptions): Promise<SqliteStore> {
    const { path, ...rest } = options
    resolveSettings(rest) // fail on bad options before touching the disk
    const connect = await loadDriver()
    let database: SqliteDatabase | undefined
    try {
      if (path !== ':memory:' && !path.startsWith('file:')) await mkdir(dirname(path), { recursive: true })
      database = connect(path)
      // busy_timeout first: switching to WAL needs a lock another process may hold for a moment.
      database.exec('PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL')
    } catch (error) {
      closeQuietly(database)
      throw new StoreError(`SqliteStore: cannot open ${path}`, { cause: error })
    }
    ownedDatabases.add(database)
    try {
      return new SqliteStore({ ...rest, database })
    } catch (error) {
      closeQuietly(database)
      throw error
    }
  }

  constructor(options: SqliteStoreOptions) {
    const settings = resolveSettings(options)
    this.#database = options.database
    this.#ownsDatabase = ownedDatabases.has(options.database)
    this.#cleanupBatchSize = settings.cleanupBatchSize
    this.#sql = attempt('create its table', () => prepareStatements(options.database, settings.table))
    if (settings.cleanupIntervalMs > 0) {
      this.#timer = setInterval(() => void this.#sweepInBackground(settings), settings.cleanupIntervalMs)
      this.#timer.unref()
    }
  }

  async get(key: string, now: number): Promise<StoreRecord | undefined> {
    const row = attempt('get', () => this.#sql.get.get(key, now)) as Row | undefined
    return row === undefined ? undefined : toRecord(row)
  }

  async create(key: string, record: StoreRecord, now: number): Promise<boolean> {
    const { data, expiresAt, version, userId = null } = record
    return attempt('create', () => changed(this.#sql.create.run(key, data, expiresAt, version, userId, now)))
  }

  async update(key: string, record: StoreRecord, expectedVersion: number, now: number): Promise<boolean> {
    const { data, expiresAt, version, userId = null } = record
    return attempt('update', () =>
      changed(this.#sql.update.run(data, expiresAt, version, userId, key, expectedVersion, now)),
    )
  }

  async touch(key: string, expiresAt: number, now: number): Promise<boolean> {
    return attempt('touch', () => changed(this.#sql.touch.run(expiresAt, key, now)))
  }

  async destroy(key: string): Promise<void> {
    attempt('destroy', () => this.#sql.destroy.run(key))
  }

  async listByUser(userId: string, now: number): Promise<KeyedStoreRecord[]> {
    const rows = attempt('listByUser', () => this.#sql.listByUser.all(userId, now)) as Row[]
    return rows.map((row) => ({ key: row.key, record: toRecord(row) }))
  }

  async destroyByUser(userId: string, options: { exceptKey?: string | undefined } = {}): Promise<number> {
    const { changes } = attempt('destroyByUser', () =>
      this.#sql.destroyByUser.run(userId, options.exceptKey ?? null),
    )
    return Number(changes)
  }

  /** Counts live and expired rows and the bytes of their data in one aggregate query (a full scan). */
  async stats(now: number): Promise<StoreStats> {
    const row = attempt('stats', () => this.#sql.stats.get(now, now)) as {
      live: number | bigint
      expired: number | bigint
      bytes: number | bigint
    }
    return { live: Number(row.live), expired: Number(row.expired), bytes: Number(row.bytes) }
  }

  /**
   * Deletes rows expired at `now`, `cleanupBatchSize` at a time, yielding to the event loop between
   * batches so a large backlog neither holds the write lock nor blocks requests for long. `onProgress`
   * hears the running total after each batch.
   */
  async cleanup(now: number, options: CleanupOptions = {}): Promise<number> {
    let deleted = 0
    for (;;) {
      const batch = Number(
        attempt('cleanup', () => this.#sql.cleanup.run(now, this.#cleanupBatchSize)).changes,
      )
      deleted += batch
      if (batch > 0) options.onProgress?.(deleted)
      if (batch < this.#cleanupBatchSize) return deleted
      await nextTurn()
      if (this.#closed) return deleted
    }
  }

  /** Stops the sweep timer and, if {@link SqliteStore.open} opened the database, closes it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.#timer = undefined
    if (this.#ownsDatabase) attempt('close', () => this.#database.close())
  }

  async #sweepInBackground(settings: Settings): Promise<void> {
    if (this.#sweeping) return // the previous sweep is still working through a backlog
    this.#sweeping = true
    try {
      await this.cleanup(settings.clock())
    } catch (error) {
      settings.onCleanupError(error as StoreError) // cleanup() rejects only with StoreError
    } finally {
      this.#sweeping = false
    }
  }
}

interface Settings {
  readonly table: string
  readonly cleanupIntervalMs: number
  readonly cleanupBatchSize: number
  readonly clock: () => number
  readonly onCleanupError: (error: StoreError) => void
}

function resolveSettings(options: Omit<SqliteStoreOptions, 'database'>): Settings {
  const {
    table = DEFAULT_TABLE,
    cleanupIntervalMs = 300_000,
    cleanupBatchSize = 1000,
    clock = Date.now,
    onCleanupError = (error: StoreError) => process.emitWarning(error),
  } = options
  checkTable(table)
  if (!Number.isInteger(cleanupIntervalMs) || cleanupIntervalMs < 0 || cleanupIntervalMs > MAX_TIMER_DELAY) {
    throw new SessionConfigError(
      `SqliteStore: cleanupIntervalMs must be an integer from 0 to ${MAX_TIMER_DELAY}, got ${cleanupIntervalMs}`,
    )
  }
  if (!Number.isSafeInteger(cleanupBatchSize) || cleanupBatchSize < 1) {
    throw new SessionConfigError(
      `SqliteStore: cleanupBatchSize must be a positive integer, got ${cleanupBatchSize}`,
    )
  }
  return { table, cleanupIntervalMs, cleanupBatchSize, clock, onCleanupError }
}

function checkTable(table: unknown): asserts table is string {
  if (typeof table !== 'string' || !TABLE_NAME.test(table)) {
    throw new SessionConfigError(
      `SqliteStore: table must match ${TABLE_NAME} (letters, digits and _, at most 63), got ${JSON.stringify(table)}`,
    )
  }
}

/** The DDL, for a name that passed TABLE_NAME (so quoting it is enough). */
function schemaSql(table: string): string {
  const t = `"${table}"`
  return `CREATE TABLE IF NOT EXISTS ${t} (
  key TEXT PRIMARY KEY NOT NULL,
  data TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  version INTEGER NOT NULL,
  user_id TEXT
);
CREATE INDEX IF NOT EXISTS "${table}_expires_at" ON ${t} (expires_at);
CREATE INDEX IF NOT EXISTS "${table}_user_id" ON ${t} (user_id) WHERE user_id IS NOT NULL;
`
}

function prepareStatements(database: SqliteDatabase, table: string): Statements {
  // The name passed TABLE_NAME, so quoting it is enough; every value below is a bound parameter.
  const t = `"${table}"`
  database.exec(schemaSql(table))
  const columns = 'key, data, expires_at, version, user_id'
  return {
    get: database.prepare(`SELECT ${columns} FROM ${t} WHERE key = ? AND expires_at > ?`),
    // A live row makes the DO UPDATE's WHERE false, so nothing changes and `changes` is 0.
    create: database.prepare(
      `INSERT INTO ${t} (${columns}) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at,
         version = excluded.version, user_id = excluded.user_id
       WHERE ${t}.expires_at <= ?`,
    ),
    // Compare-and-set in one statement: atomic even across processes sharing the file.
    update: database.prepare(
      `UPDATE ${t} SET data = ?, expires_at = ?, version = ?, user_id = ?
       WHERE key = ? AND version = ? AND expires_at > ?`,
    ),
    touch: database.prepare(
      `UPDATE ${t} SET expires_at = max(expires_at, ?) WHERE key = ? AND expires_at > ?`,
    ),
    destroy: database.prepare(`DELETE FROM ${t} WHERE key = ?`),
    listByUser: database.prepare(`SELECT ${columns} FROM ${t} WHERE user_id = ? AND expires_at > ?`),
    // `key IS NOT NULL` holds for every row, so a NULL exceptKey spares nothing.
    destroyByUser: database.prepare(`DELETE FROM ${t} WHERE user_id = ? AND key IS NOT ?`),
    cleanup: database.prepare(
      `DELETE FROM ${t} WHERE rowid IN (SELECT rowid FROM ${t} WHERE expires_at <= ? LIMIT ?)`,
    ),
    // CAST AS BLOB: length() of text counts characters; of a blob, its UTF-8 bytes.
    stats: database.prepare(
      `SELECT coalesce(sum(expires_at > ?), 0) AS live, coalesce(sum(expires_at <= ?), 0) AS expired,
         coalesce(sum(length(CAST(data AS BLOB))), 0) AS bytes FROM ${t}`,
    ),
  }
}

/** Runs a driver call, turning whatever it throws into a {@link StoreError} with the original as `cause`. */
function attempt<T>(operation: string, call: () => T): T {
  try {
    return call()
  } catch (error) {
    throw new StoreError(`SqliteStore: ${operation} failed`, { cause: error })
  }
}

function changed(result: { changes: number | bigint }): boolean {
  return Number(result.changes) > 0
}

function toRecord(row: Row): StoreRecord {
  const record = { data: row.data, expiresAt: Number(row.expires_at), version: Number(row.version) }
  return row.user_id === null ? record : { ...record, userId: row.user_id }
}

function closeQuietly(database: SqliteDatabase | undefined): void {
  try {
    database?.close()
  } catch {
    // Already failing with a more useful error.
  }
}

type Connect = (path: string) => SqliteDatabase

/**
 * Finds a driver without importing one statically, so `better-sqlite3` stays an optional peer dependency
 * and apps that never open a SQLite store never load it.
 */
async function loadDriver(): Promise<Connect> {
  let missing: unknown
  try {
    const { default: Database } = await import('better-sqlite3')
    return (path) => new Database(path)
  } catch (error) {
    if (!isModuleNotFound(error)) {
      throw new SessionConfigError(
        'SqliteStore: better-sqlite3 is installed but failed to load (rebuild it?)',
        {
          cause: error,
        },
      )
    }
    missing = error
  }
  try {
    // A variable specifier keeps TypeScript from resolving a module @types/node 20 does not declare.
    const specifier = 'node:sqlite'
    const { DatabaseSync }: { DatabaseSync: new (path: string) => SqliteDatabase } = await import(specifier)
    return (path) => new DatabaseSync(path)
  } catch {
    throw new SessionConfigError(
      'SqliteStore needs a SQLite driver: run `npm install better-sqlite3@12`, or use Node 22.5+ for node:sqlite',
      { cause: missing },
    )
  }
}

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
}
