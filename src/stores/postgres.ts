/**
 * A {@link Store} in one PostgreSQL table, shared by every app server that reaches the database. Works with
 * the `pg` driver (an optional peer dependency): pass your own `pg.Pool`, or let
 * {@link PostgresStore.open} create one from a connection string.
 *
 * Subpath: `tessera/postgres`.
 *
 * @module
 */

import { createHash } from 'node:crypto'
import { userInfo } from 'node:os'
import type { Pool } from 'pg'
import { SessionConfigError, StoreError } from '../errors.js'
import type { CleanupOptions, KeyedStoreRecord, Store, StoreRecord, StoreStats } from '../store.js'

/** What a query resolves to; `pg`'s `QueryResult` fits. */
export interface PostgresQueryResult {
  readonly rows: readonly unknown[]
  readonly rowCount: number | null
}

/** Anything that runs a parameterised query, as `pg`'s `Pool` and `PoolClient` do. */
export interface PostgresQueryable {
  query(text: string, values?: unknown[]): Promise<PostgresQueryResult>
}

/** A connection checked out of a pool (`pg`'s `PoolClient`). */
export interface PostgresPoolClient extends PostgresQueryable {
  /** Returns the connection to the pool; `true` closes it instead. */
  release(destroy?: boolean): void
  on?(event: 'error', listener: (error: Error) => void): unknown
  removeListener?(event: 'error', listener: (error: Error) => void): unknown
}

/**
 * The part of a `pg.Pool` the store uses, so `pg`'s types are not needed to use it. `connect()` is what lets
 * cleanup hold an advisory lock on one connection; a queryable without it still works, but its sweeps are
 * not coordinated across app servers (they stay correct: see {@link PostgresStore.cleanup}).
 */
export interface PostgresPool extends PostgresQueryable {
  connect?(): Promise<PostgresPoolClient>
}

/**
 * Options for `new PostgresStore()`, which uses a pool you created and still own.
 *
 * @example
 * ```ts
 * import pg from 'pg'
 * const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL })
 * const store = new PostgresStore({ pool, table: 'web_sessions', schema: 'app' })
 * ```
 */
export interface PostgresStoreOptions {
  /**
   * A `pg.Pool`. `close()` leaves it open. A single `pg.Client` does not fit, since cleanup checks out a
   * connection of its own: wrap one as `{ query: (text, values) => client.query(text, values) }`.
   */
  pool: PostgresPool
  /**
   * Table holding the sessions. It must match `/^[A-Za-z_][A-Za-z0-9_]{0,62}$/`, because a table name cannot
   * be a bound parameter; it is quoted, so its case is kept. Give each store its own table.
   * @default 'tessera_sessions'
   */
  table?: string | undefined
  /**
   * Schema of the table, under the same rule as `table`. It must already exist: the store never creates
   * schemas. Unset, the table is found through the connection's `search_path` (usually `public`).
   */
  schema?: string | undefined
  /**
   * Create the table and its indexes on first use if they are missing. Turn it off when the app's role may
   * not run DDL, and apply {@link postgresSchemaSql} in a migration instead; a missing table then fails
   * every call with a {@link StoreError}.
   * @default true
   */
  createTable?: boolean | undefined
  /**
   * How often the background sweep deletes expired rows, in milliseconds. `0` disables the timer (run
   * {@link PostgresStore.cleanup} from a job instead). The timer never keeps the process alive. With many
   * app servers, one sweeps at a time and the others skip their turn.
   * @default 300_000
   */
  cleanupIntervalMs?: number | undefined
  /**
   * Rows deleted per statement by {@link PostgresStore.cleanup}. Each batch is its own short transaction,
   * so a large backlog never holds row locks or bloats one transaction for long.
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
 * Options for {@link PostgresStore.open}, which creates (and on close, ends) a pool itself.
 *
 * @example
 * ```ts
 * const store = await PostgresStore.open({ connectionString: 'postgres://app@db/app?sslmode=require' })
 * ```
 */
export interface PostgresStoreOpenOptions extends Omit<PostgresStoreOptions, 'pool'> {
  /** A libpq-style URL, as `pg.Pool` takes it. For more pool settings, create the pool yourself. */
  connectionString: string
  /**
   * Return without connecting: the table is checked (and created) on the first call instead, so the app can
   * start while PostgreSQL is down (its requests get `StoreError`s until then). By default `open()` connects
   * and rejects with a `StoreError` when the server cannot be reached.
   * @default false
   */
  lazy?: boolean
}

/**
 * Options for {@link postgresSchemaSql}.
 *
 * @example
 * ```ts
 * postgresSchemaSql({ table: 'web_sessions', schema: 'app' })
 * ```
 */
export interface PostgresSchemaOptions {
  /** @default 'tessera_sessions' */
  table?: string | undefined
  /** Unset: the table is created in the first schema of `search_path`. */
  schema?: string | undefined
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/
const MAX_IDENTIFIER_LENGTH = 63
const MAX_TIMER_DELAY = 2_147_483_647
/** Pools created by {@link PostgresStore.open}, mapped to how to end them: only these does a store end. */
const ownedPools = new WeakMap<PostgresPool, () => Promise<void>>()

/**
 * The SQL that creates the store's table and indexes, for operators who run DDL by hand or in migrations
 * (then pass `createTable: false`). Idempotent: every statement is `IF NOT EXISTS`.
 *
 * @example
 * ```ts
 * import { postgresSchemaSql } from 'tessera/postgres'
 * await pool.query(postgresSchemaSql({ table: 'web_sessions' }))
 * // or: node -e "import('tessera/postgres').then(m => console.log(m.postgresSchemaSql()))" | psql "$DATABASE_URL"
 * ```
 *
 * @throws {SessionConfigError} when `table` or `schema` is not a plain identifier.
 */
export function postgresSchemaSql(options: PostgresSchemaOptions = {}): string {
  const { table = 'tessera_sessions', schema } = options
  checkIdentifier('table', table)
  if (schema !== undefined) checkIdentifier('schema', schema)
  return schemaSql(table, schema)
}

interface Row {
  readonly key: string
  readonly data: string
  // Numbers, strings or bigints, depending on the type parsers the user's pool has set.
  readonly expires_at: string | number | bigint
  readonly version: string | number | bigint
  readonly user_id: string | null
}

interface Statements {
  /** The quoted, qualified table name, as a value for `exists`. */
  readonly table: string
  readonly exists: string
  readonly ddl: string
  readonly probe: string
  readonly get: string
  readonly create: string
  readonly update: string
  readonly touch: string
  readonly destroy: string
  readonly listByUser: string
  readonly destroyByUser: string
  readonly cleanup: string
  readonly stats: string
  readonly lock: string
  readonly unlock: string
}

/**
 * A {@link Store} backed by one PostgreSQL table: `key` (primary key), `data` (json), `expires_at` (epoch
 * ms), `version` and `user_id`, indexed on `expires_at` and `user_id`. Every call is one statement and one
 * round trip, so compare-and-set holds across app servers without transactions.
 *
 * Cleanup deletes expired rows in short batches, and a PostgreSQL advisory lock lets only one app server
 * sweep at a time. The lock is session-level, so it needs session pooling: behind PgBouncer in transaction
 * mode, pass `{ query: (text, values) => pool.query(text, values) }` as the pool, which sweeps without the
 * lock (still deleting each row once).
 *
 * @example
 * ```ts
 * import pg from 'pg'
 * import { PostgresStore } from 'tessera/postgres'
 *
 * // Bring your own pool, which close() leaves open:
 * const store = new PostgresStore({ pool: new pg.Pool({ connectionString: process.env.DATABASE_URL }) })
 *
 * // Or let the store create one and end it on close():
 * const owned = await PostgresStore.open({ connectionString: process.env.DATABASE_URL! })
 * ```
 *
 * @throws {SessionConfigError} from the constructor when an option is invalid.
 */
export class PostgresStore implements Store {
  readonly #pool: PostgresPool
  readonly #endPool: (() => Promise<void>) | undefined
  readonly #sql: Statements
  readonly #name: string
  readonly #lockKey: string
  readonly #cleanupBatchSize: number
  readonly #createTable: boolean
  /** Settles once the table is known to exist; reset on failure so the next call tries again. */
  #ready: Promise<void> | undefined
  #tableReady = false
  #sweep: Promise<number> | undefined
  /** The timer's last sweep, including its report to onCleanupError. Never rejects. */
  #background: Promise<void> | undefined
  #timer: ReturnType<typeof setInterval> | undefined
  #closed = false

  /**
   * Creates a `pg.Pool` for `options.connectionString`, checks the connection and the table (creating it
   * unless `createTable` is false), so a wrong URL or a missing table fails at startup rather than on the
   * first request. The store owns this pool and ends it on {@link PostgresStore.close}.
   *
   * @example
   * ```ts
   * const store = await PostgresStore.open({ connectionString: process.env.DATABASE_URL!, table: 'web_sessions' })
   * ```
   *
   * @throws {SessionConfigError} when an option is invalid or `pg` is not installed.
   * @throws {StoreError} when the database cannot be reached or the table is missing and may not be created.
   */
  static async open(options: PostgresStoreOpenOptions): Promise<PostgresStore> {
    const { connectionString, lazy = false, ...rest } = options
    resolveSettings(rest) // fail on bad options before loading the driver
    if (typeof connectionString !== 'string' || connectionString === '') {
      throw new SessionConfigError('PostgresStore.open: connectionString must be a non-empty string')
    }
    const PoolClass = await loadDriver()
    // allowExitOnIdle: idle connections do not keep the process alive, like the unref'd sweep timer.
    const pool: Pool = new PoolClass({
      connectionString: withDefaultUser(connectionString),
      allowExitOnIdle: true,
    })
    // Without a listener, an idle connection dropped by the server would crash the process; the pool
    // discards it and reconnects on the next query, so a warning is all it deserves.
    pool.on('error', (error) =>
      process.emitWarning(
        new StoreError('PostgresStore: an idle connection failed; the pool will reconnect', { cause: error }),
      ),
    )
    ownedPools.set(pool, () => pool.end())
    const store = new PostgresStore({ ...rest, pool })
    if (lazy) return store
    try {
      await store.#ensureTable()
      // With createTable off, #ensureTable checks nothing: look at the table once, now.
      if (!store.#createTable) await attempt(store.#name, 'open', () => pool.query(store.#sql.probe))
    } catch (error) {
      await store.close().catch(() => {}) // already failing with a more useful error
      throw error
    }
    return store
  }

  constructor(options: PostgresStoreOptions) {
    const settings = resolveSettings(options)
    if (typeof options.pool?.query !== 'function') {
      throw new SessionConfigError(
        'PostgresStore: pool must be a pg.Pool (or have a query(text, values) method)',
      )
    }
    const { table, schema } = settings
    this.#pool = options.pool
    this.#endPool = ownedPools.get(options.pool)
    ownedPools.delete(options.pool)
    this.#name = schema === undefined ? table : `${schema}.${table}`
    this.#lockKey = advisoryKey('cleanup', this.#name)
    this.#sql = statements(table, schema, advisoryKey('ddl', this.#name))
    this.#cleanupBatchSize = settings.cleanupBatchSize
    this.#createTable = settings.createTable
    this.#tableReady = !settings.createTable // nothing to check: a missing table fails each call
    if (settings.cleanupIntervalMs > 0) {
      this.#timer = setInterval(() => {
        this.#background = this.#sweepInBackground(settings)
      }, settings.cleanupIntervalMs)
      this.#timer.unref()
    }
  }

  async get(key: string, now: number): Promise<StoreRecord | undefined> {
    const { rows } = await this.#query('get', this.#sql.get, [key, now])
    const row = rows[0] as Row | undefined
    return row === undefined ? undefined : toRecord(row)
  }

  async create(key: string, record: StoreRecord, now: number): Promise<boolean> {
    const { data, expiresAt, version, userId = null } = record
    return changed(
      await this.#query('create', this.#sql.create, [key, data, expiresAt, version, userId, now]),
    )
  }

  async update(key: string, record: StoreRecord, expectedVersion: number, now: number): Promise<boolean> {
    const { data, expiresAt, version, userId = null } = record
    const values = [data, expiresAt, version, userId, key, expectedVersion, now]
    return changed(await this.#query('update', this.#sql.update, values))
  }

  async touch(key: string, expiresAt: number, now: number): Promise<boolean> {
    return changed(await this.#query('touch', this.#sql.touch, [key, expiresAt, now]))
  }

  async destroy(key: string): Promise<void> {
    await this.#query('destroy', this.#sql.destroy, [key])
  }

  async listByUser(userId: string, now: number): Promise<KeyedStoreRecord[]> {
    const { rows } = await this.#query('listByUser', this.#sql.listByUser, [userId, now])
    return (rows as Row[]).map((row) => ({ key: row.key, record: toRecord(row) }))
  }

  async destroyByUser(userId: string, options: { exceptKey?: string | undefined } = {}): Promise<number> {
    const values = [userId, options.exceptKey ?? null]
    return (await this.#query('destroyByUser', this.#sql.destroyByUser, values)).rowCount ?? 0
  }

  /** Counts live and expired rows and the bytes of their data in one aggregate query (a full scan). */
  async stats(now: number): Promise<StoreStats> {
    const { rows } = await this.#query('stats', this.#sql.stats, [now])
    // Counts and sums are int8/numeric, which pg returns as strings unless the pool says otherwise.
    const row = rows[0] as Record<'live' | 'expired' | 'bytes', string | number | bigint>
    return { live: Number(row.live), expired: Number(row.expired), bytes: Number(row.bytes) }
  }

  /**
   * Deletes rows expired at `now`, `cleanupBatchSize` per statement, and resolves how many it deleted;
   * `onProgress` hears the running total after each batch.
   *
   * Only one sweep runs at a time across every app server on this table: the sweep takes a PostgreSQL
   * advisory lock on a connection of its own, and a call that finds the lock held (by another server, or
   * by this store's own timer) resolves 0 at once instead of queueing. Without the lock (a pool with no
   * `connect()`), concurrent sweeps still never delete or count a row twice: each batch claims its rows
   * with `FOR UPDATE SKIP LOCKED`.
   */
  async cleanup(now: number, options: CleanupOptions = {}): Promise<number> {
    if (this.#sweep !== undefined) return 0
    const sweep = this.#runSweep(now, options.onProgress)
    this.#sweep = sweep
    try {
      return await sweep
    } finally {
      this.#sweep = undefined
    }
  }

  /**
   * Stops the sweep timer, waits for a running sweep to finish its current batch (and a timer-driven one
   * to report its failure) and, if {@link PostgresStore.open} created the pool, ends it. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#sweep?.catch(() => {}) // its caller sees the error; close() only waits
    await this.#background // so a failed last sweep is reported before close() resolves
    if (this.#endPool !== undefined) await attempt(this.#name, 'close', this.#endPool)
  }

  async #query(operation: string, text: string, values: unknown[]): Promise<PostgresQueryResult> {
    if (!this.#tableReady) await this.#ensureTable()
    return attempt(this.#name, operation, () => this.#pool.query(text, values))
  }

  /**
   * Creates the table on first use, once: concurrent first calls share one attempt. The existence check
   * comes first because `CREATE INDEX IF NOT EXISTS` takes a SHARE lock on the table even when the index
   * exists, which would stall session writes on every app server boot; it also lets a role without DDL
   * rights use an existing table.
   */
  #ensureTable(): Promise<void> {
    if (this.#tableReady) return Promise.resolve()
    this.#ready ??= (async () => {
      const found = await attempt(this.#name, 'check its table', () =>
        this.#pool.query(this.#sql.exists, [this.#sql.table]),
      )
      // No values: pg sends a simple query, the only kind that runs several statements.
      if (found.rowCount === 0)
        await attempt(this.#name, 'create its table', () => this.#pool.query(this.#sql.ddl))
      this.#tableReady = true
    })().catch((error: unknown) => {
      this.#ready = undefined
      throw error
    })
    return this.#ready
  }

  async #runSweep(now: number, onProgress: CleanupOptions['onProgress']): Promise<number> {
    await this.#ensureTable()
    const pool = this.#pool
    const connect = pool.connect
    if (connect === undefined) return this.#deleteExpired(pool, now, onProgress)
    const client = await attempt(this.#name, 'cleanup', () => connect.call(pool))
    // pg leaves errors of a checked-out connection to its holder; unheard, they would crash the process.
    // The query in flight rejects with the same error, so the listener only has to exist.
    const ignore = () => {}
    client.on?.('error', ignore)
    // On any failure the connection is closed rather than returned: that releases the advisory lock
    // server-side for certain, whatever state the session was left in.
    let destroy = true
    try {
      const locked = await attempt(this.#name, 'cleanup', () => client.query(this.#sql.lock, [this.#lockKey]))
      if (locked.rowCount === 0) {
        destroy = false
        return 0
      }
      const deleted = await this.#deleteExpired(client, now, onProgress)
      const unlocked = await attempt(this.#name, 'cleanup', () =>
        client.query(this.#sql.unlock, [this.#lockKey]),
      )
      destroy = unlocked.rowCount === 0 // not holding the lock we took means something is off: drop the session
      return deleted
    } finally {
      client.removeListener?.('error', ignore)
      client.release(destroy)
    }
  }

  async #deleteExpired(
    queryable: PostgresQueryable,
    now: number,
    onProgress: CleanupOptions['onProgress'],
  ): Promise<number> {
    let deleted = 0
    for (;;) {
      const values = [now, this.#cleanupBatchSize]
      const result = await attempt(this.#name, 'cleanup', () => queryable.query(this.#sql.cleanup, values))
      const batch = result.rowCount ?? 0
      deleted += batch
      if (batch > 0) onProgress?.(deleted)
      // A short batch means the backlog is done (or its rest is locked by writers: the next sweep gets it).
      if (batch < this.#cleanupBatchSize || this.#closed) return deleted
    }
  }

  async #sweepInBackground(settings: Settings): Promise<void> {
    try {
      await this.cleanup(settings.clock())
    } catch (error) {
      // cleanup() rejects only with StoreError; a throwing clock is the one other way to get here.
      settings.onCleanupError(
        error instanceof StoreError
          ? error
          : new StoreError('PostgresStore: cleanup failed', { cause: error }),
      )
    }
  }
}

interface Settings {
  readonly table: string
  readonly schema: string | undefined
  readonly createTable: boolean
  readonly cleanupIntervalMs: number
  readonly cleanupBatchSize: number
  readonly clock: () => number
  readonly onCleanupError: (error: StoreError) => void
}

function resolveSettings(options: Omit<PostgresStoreOptions, 'pool'>): Settings {
  const {
    table = 'tessera_sessions',
    schema,
    createTable = true,
    cleanupIntervalMs = 300_000,
    cleanupBatchSize = 1000,
    clock = Date.now,
    onCleanupError = (error: StoreError) => process.emitWarning(error),
  } = options
  checkIdentifier('table', table)
  if (schema !== undefined) checkIdentifier('schema', schema)
  if (typeof createTable !== 'boolean') {
    throw new SessionConfigError(`PostgresStore: createTable must be a boolean, got ${String(createTable)}`)
  }
  if (!Number.isInteger(cleanupIntervalMs) || cleanupIntervalMs < 0 || cleanupIntervalMs > MAX_TIMER_DELAY) {
    throw new SessionConfigError(
      `PostgresStore: cleanupIntervalMs must be an integer from 0 to ${MAX_TIMER_DELAY}, got ${cleanupIntervalMs}`,
    )
  }
  if (!Number.isSafeInteger(cleanupBatchSize) || cleanupBatchSize < 1) {
    throw new SessionConfigError(
      `PostgresStore: cleanupBatchSize must be a positive integer, got ${cleanupBatchSize}`,
    )
  }
  return { table, schema, createTable, cleanupIntervalMs, cleanupBatchSize, clock, onCleanupError }
}

function checkIdentifier(option: 'table' | 'schema', value: unknown): void {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new SessionConfigError(
      `PostgresStore: ${option} must match ${IDENTIFIER} (letters, digits and _, at most 63), got ${JSON.stringify(value)}`,
    )
  }
}

/** `"schema"."table"`. Names passed {@link IDENTIFIER}, so quoting is enough to make them safe. */
function qualified(table: string, schema: string | undefined): string {
  return schema === undefined ? `"${table}"` : `"${schema}"."${table}"`
}

/**
 * `<table>_<suffix>`, shortened with a hash when it would pass PostgreSQL's 63-byte limit: truncation by
 * the server could give both indexes of a long table name the same name, and `IF NOT EXISTS` would then
 * silently skip the second.
 */
function indexName(table: string, suffix: string): string {
  const name = `${table}_${suffix}`
  if (name.length <= MAX_IDENTIFIER_LENGTH) return name
  const hash = createHash('sha256').update(table).digest('hex').slice(0, 8)
  return `${table.slice(0, MAX_IDENTIFIER_LENGTH - suffix.length - hash.length - 2)}_${hash}_${suffix}`
}

function schemaSql(table: string, schema: string | undefined): string {
  const t = qualified(table, schema)
  return `-- tessera session store. Idempotent; PostgresStore runs it itself unless createTable is false.
--
-- data is json, not jsonb, on purpose: json keeps the text exactly as written, and the store must
-- return it byte for byte. jsonb would re-serialise it (whitespace, key order, duplicate keys) and
-- reject \\u0000. json is still validated, and data->>'field' works for ad-hoc queries.
-- key and user_id use the "C" collation: byte-wise comparison suits hex keys and opaque ids, is the
-- fastest, and keeps the indexes valid across operating-system collation upgrades.
CREATE TABLE IF NOT EXISTS ${t} (
  key text COLLATE "C" PRIMARY KEY,   -- SHA-256 hex of the session id; the id itself is never stored
  data json NOT NULL,
  expires_at bigint NOT NULL,         -- epoch milliseconds, by the session manager's clock
  version integer NOT NULL,           -- compare-and-set counter: 1 on create, +1 on every write
  user_id text COLLATE "C"            -- NULL for anonymous sessions
);
CREATE INDEX IF NOT EXISTS "${indexName(table, 'expires_at')}" ON ${t} (expires_at);
CREATE INDEX IF NOT EXISTS "${indexName(table, 'user_id')}" ON ${t} (user_id) WHERE user_id IS NOT NULL;
`
}

function statements(table: string, schema: string | undefined, ddlLockKey: string): Statements {
  const t = qualified(table, schema)
  // data::text, because pg parses json columns into objects by default and the text must come back as stored.
  const columns = 'key, data::text AS data, expires_at, version, user_id'
  return {
    // Existence and lock answers are read from rowCount, which no custom type parser can change.
    table: t,
    exists: 'SELECT 1 WHERE to_regclass($1) IS NOT NULL',
    // Several statements in one simple query run as one transaction, so this transaction-level lock
    // serialises app servers creating the table at the same moment (concurrent CREATE TABLE IF NOT EXISTS
    // can otherwise fail on a duplicate catalog entry). The key is a digest, not user input.
    ddl: `SELECT pg_advisory_xact_lock(${ddlLockKey});\n${schemaSql(table, schema)}`,
    probe: `SELECT 1 FROM ${t} LIMIT 0`,
    get: `SELECT ${columns} FROM ${t} WHERE key = $1 AND expires_at > $2`,
    // A live row makes the DO UPDATE's WHERE false, so nothing changes and rowCount is 0; an expired one
    // is replaced in the same atomic statement.
    create: `INSERT INTO ${t} AS s (key, data, expires_at, version, user_id) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at,
        version = excluded.version, user_id = excluded.user_id
      WHERE s.expires_at <= $6`,
    // Compare-and-set in one statement: a concurrent writer's commit makes the version check fail here.
    update: `UPDATE ${t} SET data = $1, expires_at = $2, version = $3, user_id = $4
      WHERE key = $5 AND version = $6 AND expires_at > $7`,
    touch: `UPDATE ${t} SET expires_at = GREATEST(expires_at, $2) WHERE key = $1 AND expires_at > $3`,
    destroy: `DELETE FROM ${t} WHERE key = $1`,
    listByUser: `SELECT ${columns} FROM ${t} WHERE user_id = $1 AND expires_at > $2`,
    // IS DISTINCT FROM NULL holds for every row, so a null exceptKey spares nothing.
    destroyByUser: `DELETE FROM ${t} WHERE user_id = $1 AND key IS DISTINCT FROM $2`,
    // FOR UPDATE re-checks expiry on the latest row version, so a row touched meanwhile survives; SKIP
    // LOCKED leaves rows a writer holds to the next sweep instead of waiting for them. `= ANY(ARRAY(...))`
    // rather than `IN (...)`: the planner turns IN into a hash join over a full scan of the table for
    // every batch, while ANY looks the claimed keys up in the primary key.
    cleanup: `DELETE FROM ${t} WHERE key = ANY(ARRAY(
      SELECT key FROM ${t} WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))`,
    // data::text is the stored text as written (json keeps it verbatim); octet_length counts its bytes.
    stats: `SELECT count(*) FILTER (WHERE expires_at > $1) AS live,
        count(*) FILTER (WHERE expires_at <= $1) AS expired,
        coalesce(sum(octet_length(data::text)), 0) AS bytes
      FROM ${t}`,
    lock: 'SELECT 1 WHERE pg_try_advisory_lock($1::bigint)',
    unlock: 'SELECT 1 WHERE pg_advisory_unlock($1::bigint)',
  }
}

/**
 * A 64-bit advisory lock key derived from the table's name, so stores on different tables never wait on
 * each other, while every app server on one table computes the same key.
 */
function advisoryKey(purpose: 'cleanup' | 'ddl', name: string): string {
  return createHash('sha256').update(`tessera:${purpose}:${name}`).digest().readBigInt64BE(0).toString()
}

/** Runs a driver call, turning whatever it throws or rejects with into a {@link StoreError} with the original as `cause`. */
async function attempt<T>(table: string, operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw new StoreError(`PostgresStore: ${operation} failed${hint(table, error)}`, { cause: error })
  }
}

/** For the two misconfigurations an operator meets first, the fix, rather than leave it to the cause. */
function hint(table: string, error: unknown): string {
  switch ((error as { code?: unknown } | null)?.code) {
    case '42P01': // undefined_table
      return `: table ${table} does not exist (apply postgresSchemaSql(), or pass createTable: true)`
    case '3F000': // invalid_schema_name
      return `: the schema of ${table} does not exist (create it first: the store never creates schemas)`
    default:
      return ''
  }
}

function changed(result: PostgresQueryResult): boolean {
  return (result.rowCount ?? 0) > 0
}

function toRecord(row: Row): StoreRecord {
  // int8 arrives as a string by default; epoch milliseconds stay far below 2^53, so Number() is exact.
  const record = { data: row.data, expiresAt: Number(row.expires_at), version: Number(row.version) }
  return row.user_id === null ? record : { ...record, userId: row.user_id }
}

type PoolConstructor = new (config: { connectionString: string; allowExitOnIdle: boolean }) => Pool

/** Loads `pg` only when {@link PostgresStore.open} needs it, so it stays an optional peer dependency. */
async function loadDriver(): Promise<PoolConstructor> {
  try {
    const { default: pg } = await import('pg')
    return pg.Pool
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new SessionConfigError('PostgresStore needs the pg driver: run `npm install pg`', {
        cause: error,
      })
    }
    throw new SessionConfigError('PostgresStore: pg is installed but failed to load', { cause: error })
  }
}

// pg takes the default user name from $USER only, which services and containers often lack; fall back to the
// operating system's user name, as libpq (psql) does. (pg lets the connection string override a `user` option,
// so the name goes into the URL.)
function withDefaultUser(connectionString: string): string {
  if (process.env.PGUSER || process.env.USER) return connectionString
  try {
    const url = new URL(connectionString)
    if (url.username !== '' || !/^postgres(ql)?:$/.test(url.protocol)) return connectionString
    url.username = encodeURIComponent(userInfo().username)
    return url.toString()
  } catch {
    return connectionString // a key=value connection string, or no OS user: leave it to pg
  }
}
