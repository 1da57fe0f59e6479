/**
 * A bridge to the express-session store ecosystem: `fromConnectStore(store)` turns any store written for
 * express-session (connect-redis, connect-mongo, connect-dynamodb, connect-session-sequelize, memorystore…)
 * into a tessera {@link Store}.
 *
 * The store holds, under our hashed key as its `sid`, an object it understands: `cookie` (`expires`,
 * `maxAge`, `originalMaxAge`, so its own TTL logic frees the record when the session ends) and `tessera`
 * (the record). It never sees a session ID: keys are SHA-256 hashes, as with every tessera store.
 *
 * What the bridge cannot give, because the callback API (`get`/`set`/`destroy`/`all`) has no way to ask:
 * - **Compare-and-set across processes.** `create`, `update` and `touch` read, compare and write under a
 *   per-key lock, which is exact within one process; two processes writing one session at the same instant
 *   can both succeed, the later write winning. Use a native tessera store (RedisStore, PostgresStore…) when
 *   several instances serve one user's concurrent requests.
 * - **A per-user index without `all()`.** `listByUser` and `destroyByUser` scan `all()`, which is a full
 *   scan (fine for thousands of sessions, slow for millions). A store without `all()` resolves `[]` and `0`:
 *   "your devices" and "log out everywhere" then do nothing.
 * - **Cleanup.** Expired records are freed by the store's own TTL; `cleanup()` deletes the expired records
 *   `all()` lists, and resolves 0 without `all()`.
 * - **Stats without `all()`.** `stats()` counts what `all()` lists (a full scan); a bridge to a store without
 *   `all()` has no `stats` method at all, and `tessera stats` says so.
 *
 * Subpath: `tessera/connect`.
 *
 * @example
 * import { createClient } from 'redis'
 * import { RedisStore } from 'connect-redis'
 * import { fromConnectStore } from 'tessera/connect'
 *
 * const client = await createClient({ url: process.env.REDIS_URL }).connect()
 * const sessions = createSessionManager({
 *   store: fromConnectStore(new RedisStore({ client, prefix: 'sess:' })),
 *   secrets: [process.env.SESSION_SECRET!],
 * })
 *
 * @module
 */
import { StoreError } from '../errors.js'
import type { CleanupOptions, KeyedStoreRecord, Store, StoreRecord, StoreStats } from '../store.js'

/** The callback API of an express-session store; `touch` and the other optional methods are not used. */
export interface ConnectStore {
  get(sid: string, callback: (error: unknown, session?: unknown) => void): unknown
  set(sid: string, session: ConnectSession, callback?: (error?: unknown) => void): unknown
  destroy(sid: string, callback?: (error?: unknown) => void): unknown
  /** Every session: an array (connect-redis, connect-mongo) or an object keyed by sid (memorystore). */
  all?(callback: (error: unknown, sessions?: unknown) => void): unknown
}

/** What the bridge stores: a session object express-session stores know how to expire. */
export interface ConnectSession {
  readonly cookie: {
    readonly expires: Date
    readonly maxAge: number
    readonly originalMaxAge: number
    readonly httpOnly: true
    readonly path: '/'
  }
  readonly tessera: { readonly key: string } & StoreRecord
}

/** Options of {@link fromConnectStore}. */
export interface ConnectStoreOptions {
  /** Marks an in-process store (memorystore) so that production checks refuse it. @default false */
  ephemeral?: boolean | undefined
  /** Milliseconds to wait for each callback (an `all()` scan too) before failing with a StoreError. @default 5_000 */
  timeout?: number | undefined
  /** The store's wall clock, which `cookie.expires` is written in. @default Date.now */
  clock?: (() => number) | undefined
}

/**
 * Wraps an express-session store as a tessera {@link Store}; see the module notes for what it cannot do.
 *
 * @example
 * const store = fromConnectStore(new MemoryStore({ checkPeriod: 60_000 }), { ephemeral: true })
 */
export function fromConnectStore(store: ConnectStore, options: ConnectStoreOptions = {}): Store {
  return new ConnectStoreBridge(store, options)
}

class ConnectStoreBridge implements Store {
  readonly ephemeral: boolean
  /** Present only when the store has `all()`: without it there is nothing to count from. */
  readonly stats?: (now: number) => Promise<StoreStats>
  readonly #store: ConnectStore
  readonly #timeout: number
  readonly #clock: () => number
  readonly #locks = new Map<string, Promise<unknown>>()
  #closed = false

  constructor(store: ConnectStore, options: ConnectStoreOptions) {
    if (
      typeof store?.get !== 'function' ||
      typeof store.set !== 'function' ||
      typeof store.destroy !== 'function'
    )
      throw new TypeError('fromConnectStore() needs an express-session store (get, set and destroy methods)')
    this.#store = store
    this.ephemeral = options.ephemeral ?? false
    this.#timeout = options.timeout ?? 5_000
    this.#clock = options.clock ?? Date.now
    if (typeof store.all === 'function') this.stats = (now) => this.#stats(now)
  }

  async get(key: string, now: number): Promise<StoreRecord | undefined> {
    const record = await this.#read(key)
    return record !== undefined && record.expiresAt > now ? record : undefined
  }

  create(key: string, record: StoreRecord, now: number): Promise<boolean> {
    return this.#exclusive(key, async () => {
      if ((await this.get(key, now)) !== undefined) return false
      await this.#write(key, record, now)
      return true
    })
  }

  update(key: string, record: StoreRecord, expectedVersion: number, now: number): Promise<boolean> {
    return this.#exclusive(key, async () => {
      if ((await this.get(key, now))?.version !== expectedVersion) return false
      await this.#write(key, record, now)
      return true
    })
  }

  touch(key: string, expiresAt: number, now: number): Promise<boolean> {
    return this.#exclusive(key, async () => {
      const live = await this.get(key, now)
      if (live === undefined) return false
      if (expiresAt > live.expiresAt) await this.#write(key, { ...live, expiresAt }, now)
      return true
    })
  }

  destroy(key: string): Promise<void> {
    return this.#exclusive(key, () => this.#call<void>('destroy', (done) => this.#store.destroy(key, done)))
  }

  async listByUser(userId: string, now: number): Promise<KeyedStoreRecord[]> {
    const all = await this.#all()
    return all.filter(({ record }) => record.userId === userId && record.expiresAt > now)
  }

  async destroyByUser(userId: string, options: { exceptKey?: string | undefined } = {}): Promise<number> {
    let count = 0
    for (const { key, record } of await this.#all()) {
      if (record.userId !== userId || key === options.exceptKey) continue
      await this.destroy(key)
      count++
    }
    return count
  }

  async cleanup(now: number, options: CleanupOptions = {}): Promise<number> {
    let count = 0
    for (const { key, record } of await this.#all()) {
      if (record.expiresAt > now) continue
      const deleted = await this.#exclusive(key, async () => {
        const current = await this.#read(key) // re-read: a write since the scan may have revived it
        if (current === undefined || current.expiresAt > now) return false
        await this.#call<void>('destroy', (done) => this.#store.destroy(key, done))
        return true
      })
      if (!deleted) continue
      count++
      options.onProgress?.(count)
    }
    return count
  }

  async #stats(now: number): Promise<StoreStats> {
    let live = 0
    let expired = 0
    let bytes = 0
    for (const { record } of await this.#all()) {
      if (record.expiresAt > now) live++
      else expired++
      bytes += Buffer.byteLength(record.data, 'utf8')
    }
    return { live, expired, bytes }
  }

  async close(): Promise<void> {
    this.#closed = true // the express-session store is the caller's: it is never closed here
  }

  async #read(key: string): Promise<StoreRecord | undefined> {
    try {
      const session = await this.#call<unknown>('get', (done) => this.#store.get(key, done))
      return recordOf(session, key)
    } catch (error) {
      // express-session's own convention for a miss in file-based stores.
      if ((error as { cause?: { code?: unknown } }).cause?.code === 'ENOENT') return undefined
      throw error
    }
  }

  // An already expired record is deleted instead: a store's TTL cannot be zero or negative.
  #write(key: string, record: StoreRecord, now: number): Promise<void> {
    const remaining = record.expiresAt - now
    if (remaining <= 0) return this.#call<void>('destroy', (done) => this.#store.destroy(key, done))
    const { data, expiresAt, version, userId } = record
    const session: ConnectSession = {
      cookie: {
        expires: new Date(this.#clock() + remaining),
        maxAge: remaining,
        originalMaxAge: remaining,
        httpOnly: true,
        path: '/',
      },
      tessera: { key, data, expiresAt, version, ...(userId !== undefined && { userId }) },
    }
    return this.#call<void>('set', (done) => this.#store.set(key, session, done))
  }

  async #all(): Promise<KeyedStoreRecord[]> {
    const all = this.#store.all
    if (typeof all !== 'function') return []
    const sessions = await this.#call<unknown>('all', (done) => all.call(this.#store, done))
    const list = Array.isArray(sessions) ? sessions : Object.values(sessions ?? {})
    const records: KeyedStoreRecord[] = []
    for (const session of list) {
      const key = (session as { tessera?: { key?: unknown } } | null)?.tessera?.key
      const record = typeof key === 'string' ? recordOf(session, key) : undefined
      if (record !== undefined) records.push({ key: key as string, record })
    }
    return records
  }

  // Runs `operation` after every earlier one on `key` in this process has settled.
  async #exclusive<T>(key: string, operation: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(key) ?? Promise.resolve()
    const result = previous.then(operation)
    const tail = result.catch(() => undefined)
    this.#locks.set(key, tail)
    try {
      return await result
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key)
    }
  }

  // One callback-style call as a promise: a callback error, a rejected returned promise, a throw or a timeout
  // all become a StoreError carrying the cause.
  #call<T>(
    operation: string,
    invoke: (done: (error?: unknown, value?: unknown) => void) => unknown,
  ): Promise<T> {
    const failure = (cause: unknown) =>
      new StoreError(`the express-session store failed (${operation})`, { cause })
    if (this.#closed) return Promise.reject(failure(new Error('the store bridge was closed')))
    return new Promise<T>((resolve, reject) => {
      const fail = (cause: unknown) => {
        clearTimeout(timer)
        reject(failure(cause))
      }
      const timer = setTimeout(() => fail(new Error(`no answer within ${this.#timeout} ms`)), this.#timeout)
      try {
        const returned = invoke((error, value) => {
          if (error !== undefined && error !== null) return fail(error)
          clearTimeout(timer)
          resolve(value as T)
        })
        if (typeof (returned as PromiseLike<unknown> | undefined)?.then === 'function') {
          ;(returned as PromiseLike<unknown>).then(undefined, fail)
        }
      } catch (error) {
        fail(error)
      }
    })
  }
}

// The record inside what the store returned, or undefined for anything else (an express-session session, a
// record stored under another key, garbage): never trust the shape of what comes back.
function recordOf(session: unknown, key: string): StoreRecord | undefined {
  const record = (session as { tessera?: Record<string, unknown> } | null | undefined)?.tessera
  if (typeof record !== 'object' || record === null || record.key !== key) return undefined
  const { data, expiresAt, version, userId } = record
  if (typeof data !== 'string' || typeof expiresAt !== 'number' || !Number.isSafeInteger(version))
    return undefined
  if (userId !== undefined && userId !== null && typeof userId !== 'string') return undefined
  return { data, expiresAt, version: version as number, ...(typeof userId === 'string' && { userId }) }
}
