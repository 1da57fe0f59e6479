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

/**
 * What an operator sees of a store's contents: `tessera stats`, and the manager's metrics. Exact counts of
 * what the store holds at the moment of the call, never estimates.
 */
export interface StoreStats {
  /** Records live at `now` (`expiresAt > now`). */
  readonly live: number
  /**
   * Records still held whose expiry has passed at `now` (`expiresAt <= now`): what `cleanup(now)` would
   * delete. A store whose backend frees records on its own (Redis TTL) counts the ones it has not freed yet,
   * so there it is usually 0.
   */
  readonly expired: number
  /**
   * UTF-8 bytes of the `data` strings of every record counted, live and expired. Keys, metadata, indexes and
   * the backend's own overhead are not counted.
   */
  readonly bytes: number
}

/** Options of {@link Store.cleanup}. */
export interface CleanupOptions {
  /**
   * Called during the sweep with the number of records deleted so far (a running total that never goes
   * down), by stores that delete in batches: after each batch that deleted something. A store that sweeps in
   * one step may never call it. It must not throw; what it throws rejects the cleanup.
   */
  readonly onProgress?: ((deleted: number) => void) | undefined
}

/** A record together with its key, as returned by {@link Store.listByUser}. */
export interface KeyedStoreRecord {
  readonly key: string
  readonly record: StoreRecord
}

/**
 * @internal Where a store living in this process can answer `get` at once, it does so under this key too,
 * with `get`'s contract but no promise, and marks its `get` function with the same key. The manager reads
 * through it only while the store's `get` is that marked function: a wrapper, subclass or assignment that
 * replaces `get` (a spy, a proxy that injects failures) is always called as written.
 */
export const getNow: unique symbol = Symbol('tessera.getNow')

/** @internal A store with {@link getNow}. */
export interface ReadsNow {
  [getNow](key: string, now: number): StoreRecord | undefined
}

/** @internal The same for `update`: a compare-and-set answered at once. */
export const updateNow: unique symbol = Symbol('tessera.updateNow')

/** @internal A store with {@link updateNow}. */
export interface UpdatesNow {
  [updateNow](key: string, record: StoreRecord, expectedVersion: number, now: number): boolean
}

/** @internal True when `store` updates at once, its `update` being the one that {@link updateNow} mirrors. */
export function updatesNow(store: Store): store is Store & UpdatesNow {
  return (
    (store.update as { [updateNow]?: unknown })[updateNow] === true &&
    typeof (store as Partial<UpdatesNow>)[updateNow] === 'function'
  )
}

/** @internal True when `store` reads at once, its `get` being the one that {@link getNow} mirrors. */
export function readsNow(store: Store): store is Store & ReadsNow {
  return (
    (store.get as { [getNow]?: unknown })[getNow] === true &&
    typeof (store as Partial<ReadsNow>)[getNow] === 'function'
  )
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
   * Counts what the store holds at `now`: exactly, by the rules of {@link StoreStats} (the store contract
   * checks them). It may read every record (an aggregate query, a directory walk, a `SCAN`), so it is meant
   * for operators and metrics scraped now and then, not for requests. Optional: a store that cannot count
   * (a bridge to a store without `all()`) leaves it out, and `tessera stats` says so.
   */
  stats?(now: number): Promise<StoreStats>

  /**
   * Deletes records expired at `now` and resolves how many were deleted. Safe to call at any time. Stores that
   * delete in batches report their progress through `options.onProgress` (`tessera purge-expired` draws it).
   */
  cleanup(now: number, options?: CleanupOptions): Promise<number>

  /**
   * Stops timers and closes what the store itself opened (never a client the user passed in). Idempotent.
   * Calls made after `close()` may reject with a `StoreError`.
   */
  close(): Promise<void>
}
