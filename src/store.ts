/**
 * The one interface every session store implements. Stores see only hashed keys and opaque
 * serialized payloads: the raw session ID never reaches them, and no object is shared between a
 * live session and its stored copy.
 *
 * Run `runStoreContract()` from `tessera/testing` against a new store to prove it keeps this contract.
 *
 * @module
 */

/** One stored session, as the store sees it. */
export interface StoreRecord {
  /** The serialized session (JSON text written by the manager). Opaque to the store: keep it byte for byte. */
  readonly data: string
  /** Epoch milliseconds at which the record expires. A record with `expiresAt <= now` is never returned. */
  readonly expiresAt: number
  /** Starts at 1 on create and goes up by one on every data write; touches leave it alone. */
  readonly version: number
  /** The user this session is bound to, for the per-user index; undefined for anonymous sessions. */
  readonly userId?: string | undefined
}

/** What an operator sees of a store's contents: `tessera stats`, and the manager's metrics. */
export interface StoreStats {
  /** Records live at `now`. */
  readonly live: number
  /** Records past their expiry that cleanup has not deleted yet (0 for stores with native expiry). */
  readonly expired: number
  /** Bytes of serialized session data held (the `data` strings, UTF-8); the store's own overhead is not counted. */
  readonly bytes: number
}

/** A record together with its key, as returned by {@link Store.listByUser}. */
export interface KeyedStoreRecord {
  readonly key: string
  readonly record: StoreRecord
}

/**
 * A session store. Keys are SHA-256 hashes of session IDs (64 lowercase hex characters), computed by the
 * manager. `now` is the manager's clock in epoch milliseconds: expiry is decided by that clock, and a
 * store's native TTL is only a backstop.
 *
 * Every method rejects with a `StoreError` (cause: the driver's error) when the backend fails; a miss is
 * never an error. Stores keep `version`, `expiresAt` and `userId` exactly as given, and return a missing
 * `userId` as absent or undefined, never null. A store with native expiry (Redis TTL) must derive the TTL
 * from `expiresAt - now`, never from its own clock, so that the manager's clock stays the truth.
 */
export interface Store {
  /**
   * True for a store that loses every session on restart and cannot be shared between processes (MemoryStore).
   * The manager refuses one in production unless told otherwise.
   */
  readonly ephemeral?: boolean

  /** The live record under `key`, or undefined when it is missing or expired at `now`. */
  get(key: string, now: number): Promise<StoreRecord | undefined>

  /**
   * Inserts a new record (its `version` is 1). Resolves false, writing nothing, when a live record already
   * holds `key`; an expired one may be replaced.
   */
  create(key: string, record: StoreRecord, now: number): Promise<boolean>

  /**
   * Compare-and-set: replaces the live record under `key` with `record` only if the live record's version is
   * `expectedVersion` (and `record.version` is `expectedVersion + 1`). Resolves false, writing nothing, when
   * the record is missing, expired or at another version: a destroyed session is never resurrected.
   */
  update(key: string, record: StoreRecord, expectedVersion: number, now: number): Promise<boolean>

  /**
   * Moves the live record's expiry to `expiresAt` without touching its data or version. Never moves expiry
   * backwards and never revives a missing or expired record. Resolves whether a live record was found.
   */
  touch(key: string, expiresAt: number, now: number): Promise<boolean>

  /** Deletes the record under `key`. Idempotent. */
  destroy(key: string): Promise<void>

  /** The live records bound to `userId`, in no particular order. Expired records never appear. */
  listByUser(userId: string, now: number): Promise<KeyedStoreRecord[]>

  /**
   * Deletes every record bound to `userId` except `exceptKey`, and resolves how many were deleted (the count
   * may include expired records that cleanup had not reached yet).
   */
  destroyByUser(userId: string, options?: { exceptKey?: string | undefined }): Promise<number>

  /**
   * Counts what the store holds at `now`. Optional: a store that cannot count cheaply (or at all, like a bridge
   * to a store without `all()`) leaves it out, and `tessera stats` says so.
   */
  stats?(now: number): Promise<StoreStats>

  /** Deletes records expired at `now` and resolves how many were deleted. Safe to call at any time. */
  cleanup(now: number): Promise<number>

  /**
   * Stops timers and closes what the store itself opened (never a client the user passed in). Idempotent.
   * Calls made after `close()` may reject with a `StoreError`.
   */
  close(): Promise<void>
}
