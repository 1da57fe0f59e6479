/**
 * An in-process {@link Store} for development, tests and single-instance deployments.
 *
 * Unlike the stores that ship with express-session and @fastify/session, it cannot leak: it holds at most
 * `maxSessions` records (least recently used go first), and a periodic, unref'd sweep deletes expired
 * records at a cost proportional to how many expired, not to how many are stored.
 *
 * Subpath: `tessera/memory`.
 *
 * @module
 */

import { SessionConfigError } from '../errors.js'
import type { KeyedStoreRecord, Store, StoreRecord } from '../store.js'

/**
 * Options for {@link MemoryStore}.
 *
 * @example
 * ```ts
 * const store = new MemoryStore({ maxSessions: 50_000, cleanupIntervalMs: 30_000 })
 * ```
 */
export interface MemoryStoreOptions {
  /**
   * Most records held at once. Creating one more evicts expired records first, then the least recently
   * used live one (reads and writes both count as use).
   * @default 10_000
   */
  maxSessions?: number | undefined
  /**
   * How often the background sweep deletes expired records, in milliseconds. `0` disables the timer;
   * call {@link MemoryStore.cleanup} yourself then. The timer never keeps the process alive.
   * @default 60_000
   */
  cleanupIntervalMs?: number | undefined
  /**
   * Clock for the timer-driven sweep, in epoch milliseconds. Every other method takes `now` from the caller.
   * @default Date.now
   */
  clock?: (() => number) | undefined
}

/**
 * One stored record. Immutable: every write replaces the object, so the expiry heap can tell a current
 * entry from a superseded one by identity alone.
 */
interface Entry {
  readonly key: string
  readonly data: string
  readonly expiresAt: number
  readonly version: number
  readonly userId: string | undefined
}

/** The longest delay `setInterval` honours; larger values silently become 1 ms in Node. */
const MAX_TIMER_DELAY = 2_147_483_647

/**
 * A bounded, self-cleaning in-memory {@link Store}.
 *
 * Data lives in this process only: it is lost on restart and not shared between instances, so use a
 * shared store (SQLite, Redis, PostgreSQL) as soon as you run more than one process.
 *
 * @example
 * ```ts
 * import { MemoryStore } from 'tessera/memory'
 *
 * const store = new MemoryStore({ maxSessions: 10_000 })
 * const manager = createSessionManager({ store, secret })
 * // on shutdown:
 * await store.close()
 * ```
 *
 * @throws {SessionConfigError} when an option is out of range.
 */
export class MemoryStore implements Store {
  /** Sessions live in this process only: lost on restart, invisible to other instances. */
  readonly ephemeral = true
  /** Key → entry. A Map iterates in insertion order, so re-inserting on use makes its first key the LRU. */
  readonly #entries = new Map<string, Entry>()
  /** userId → keys bound to that user. Kept exact on every write, eviction, expiry and destroy. */
  readonly #byUser = new Map<string, Set<string>>()
  readonly #expiry = new ExpiryHeap()
  readonly #maxSessions: number
  readonly #clock: () => number
  #timer: ReturnType<typeof setInterval> | undefined
  #evictions = 0
  #lastCleanupVisited = 0

  constructor(options: MemoryStoreOptions = {}) {
    const { maxSessions = 10_000, cleanupIntervalMs = 60_000, clock = Date.now } = options
    if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) {
      throw new SessionConfigError(`MemoryStore: maxSessions must be a positive integer, got ${maxSessions}`)
    }
    if (
      !Number.isInteger(cleanupIntervalMs) ||
      cleanupIntervalMs < 0 ||
      cleanupIntervalMs > MAX_TIMER_DELAY
    ) {
      throw new SessionConfigError(
        `MemoryStore: cleanupIntervalMs must be an integer from 0 to ${MAX_TIMER_DELAY}, got ${cleanupIntervalMs}`,
      )
    }
    this.#maxSessions = maxSessions
    this.#clock = clock
    if (cleanupIntervalMs > 0) {
      this.#timer = setInterval(() => this.#sweep(this.#clock()), cleanupIntervalMs)
      this.#timer.unref()
    }
  }

  /** Records held right now, including expired ones the sweep has not reached yet. */
  get size(): number {
    return this.#entries.size
  }

  /** Live records evicted so far to stay within `maxSessions`. A rising count means the bound is too low. */
  get evictions(): number {
    return this.#evictions
  }

  /** Users with at least one record in the per-user index. */
  get users(): number {
    return this.#byUser.size
  }

  /**
   * Heap entries the most recent sweep examined: the records it deleted plus superseded entries it
   * discarded. It tracks the number of expired records, never the number stored.
   */
  get lastCleanupVisited(): number {
    return this.#lastCleanupVisited
  }

  async get(key: string, now: number): Promise<StoreRecord | undefined> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      // Expired: free it now rather than waiting for the sweep.
      this.#remove(entry)
      return undefined
    }
    this.#markUsed(entry)
    return toRecord(entry)
  }

  async create(key: string, record: StoreRecord, now: number): Promise<boolean> {
    if (this.#live(key, now) !== undefined) return false
    this.#write(key, record)
    if (this.#entries.size > this.#maxSessions) {
      // Reclaim expired records before sacrificing a live one; cheap, since it only visits expired ones.
      this.#sweep(now)
      for (const oldest of this.#entries.values()) {
        if (this.#entries.size <= this.#maxSessions) break
        this.#remove(oldest)
        this.#evictions++
      }
    }
    return true
  }

  async update(key: string, record: StoreRecord, expectedVersion: number, now: number): Promise<boolean> {
    if (this.#live(key, now)?.version !== expectedVersion) return false
    this.#write(key, record)
    return true
  }

  async touch(key: string, expiresAt: number, now: number): Promise<boolean> {
    const entry = this.#live(key, now)
    if (entry === undefined) return false
    if (expiresAt > entry.expiresAt) this.#put({ ...entry, expiresAt })
    else this.#markUsed(entry)
    return true
  }

  async destroy(key: string): Promise<void> {
    const entry = this.#entries.get(key)
    if (entry !== undefined) this.#remove(entry)
  }

  async listByUser(userId: string, now: number): Promise<KeyedStoreRecord[]> {
    const result: KeyedStoreRecord[] = []
    for (const key of this.#byUser.get(userId) ?? []) {
      const entry = this.#entries.get(key)
      if (entry !== undefined && entry.expiresAt > now) result.push({ key, record: toRecord(entry) })
    }
    return result
  }

  async destroyByUser(userId: string, options: { exceptKey?: string | undefined } = {}): Promise<number> {
    // Copy first: #remove edits the set we would be iterating.
    const keys = [...(this.#byUser.get(userId) ?? [])]
    let deleted = 0
    for (const key of keys) {
      const entry = this.#entries.get(key)
      if (key === options.exceptKey || entry === undefined) continue
      this.#remove(entry)
      deleted++
    }
    return deleted
  }

  async cleanup(now: number): Promise<number> {
    return this.#sweep(now)
  }

  /** Stops the sweep timer. The records stay readable: there is nothing else to release. Idempotent. */
  async close(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** The entry under `key` if it is live at `now`. */
  #live(key: string, now: number): Entry | undefined {
    const entry = this.#entries.get(key)
    return entry !== undefined && entry.expiresAt > now ? entry : undefined
  }

  /** Stores a copy of the caller's record, so later changes to their object cannot reach the store. */
  #write(key: string, record: StoreRecord): void {
    const { data, expiresAt, version, userId } = record
    this.#put({ key, data, expiresAt, version, userId })
  }

  #put(entry: Entry): void {
    const previous = this.#entries.get(entry.key)
    if (previous?.userId !== entry.userId) {
      if (previous !== undefined) this.#unindex(previous)
      this.#index(entry)
    }
    this.#entries.delete(entry.key)
    this.#entries.set(entry.key, entry)
    // The previous entry's heap slot goes stale; the sweep or the next compaction discards it.
    this.#expiry.push(entry)
    if (this.#expiry.size > 2 * this.#entries.size + 1024) this.#expiry.rebuild(this.#entries.values())
  }

  #markUsed(entry: Entry): void {
    this.#entries.delete(entry.key)
    this.#entries.set(entry.key, entry)
  }

  #remove(entry: Entry): void {
    this.#entries.delete(entry.key)
    this.#unindex(entry)
  }

  #index(entry: Entry): void {
    if (entry.userId === undefined) return
    const keys = this.#byUser.get(entry.userId)
    if (keys === undefined) this.#byUser.set(entry.userId, new Set([entry.key]))
    else keys.add(entry.key)
  }

  #unindex(entry: Entry): void {
    if (entry.userId === undefined) return
    const keys = this.#byUser.get(entry.userId)
    keys?.delete(entry.key)
    if (keys?.size === 0) this.#byUser.delete(entry.userId)
  }

  /**
   * Deletes every record expired at `now`. It pops heap entries in expiry order and stops at the first
   * live one, so it visits only expired records and superseded entries (each paid for by the write that
   * superseded it). A clock jump of years costs nothing extra: there are no empty time slots to walk.
   */
  #sweep(now: number): number {
    let visited = 0
    let deleted = 0
    for (
      let top = this.#expiry.peek();
      top !== undefined && top.expiresAt <= now;
      top = this.#expiry.peek()
    ) {
      this.#expiry.pop()
      visited++
      if (this.#entries.get(top.key) === top) {
        this.#remove(top)
        deleted++
      }
    }
    this.#lastCleanupVisited = visited
    return deleted
  }
}

function toRecord(entry: Entry): StoreRecord {
  const { data, expiresAt, version, userId } = entry
  return userId === undefined ? { data, expiresAt, version } : { data, expiresAt, version, userId }
}

/**
 * A binary min-heap of entries ordered by expiry, with lazy deletion.
 *
 * Why a heap rather than per-second time buckets: buckets make a touch O(1), but they need one Set per
 * occupied second (a month-long TTL means millions of them) plus an ordered index of the buckets anyway.
 * The heap costs O(log n) per write, a single array, and nothing on reads. Superseded entries stay
 * until they surface or until the heap outgrows twice the live count, when it is rebuilt in O(n); both
 * costs are amortised over the writes that created them.
 */
class ExpiryHeap {
  #items: Entry[] = []

  get size(): number {
    return this.#items.length
  }

  peek(): Entry | undefined {
    return this.#items[0]
  }

  push(entry: Entry): void {
    this.#items.push(entry)
    this.#siftUp(this.#items.length - 1)
  }

  pop(): Entry | undefined {
    const items = this.#items
    const top = items[0]
    const last = items.pop()
    if (top !== undefined && last !== undefined && items.length > 0) {
      items[0] = last
      this.#siftDown(0)
    }
    return top
  }

  /** Replaces the contents with `entries`, dropping every superseded entry (Floyd's O(n) heapify). */
  rebuild(entries: Iterable<Entry>): void {
    this.#items = [...entries]
    for (let i = (this.#items.length >>> 1) - 1; i >= 0; i--) this.#siftDown(i)
  }

  #siftUp(index: number): void {
    const items = this.#items
    const item = items[index]!
    while (index > 0) {
      const parentIndex = (index - 1) >>> 1
      const parent = items[parentIndex]!
      if (parent.expiresAt <= item.expiresAt) break
      items[index] = parent
      index = parentIndex
    }
    items[index] = item
  }

  #siftDown(index: number): void {
    const items = this.#items
    const length = items.length
    const item = items[index]!
    for (;;) {
      let child = 2 * index + 1
      if (child >= length) break
      const right = child + 1
      if (right < length && items[right]!.expiresAt < items[child]!.expiresAt) child = right
      if (items[child]!.expiresAt >= item.expiresAt) break
      items[index] = items[child]!
      index = child
    }
    items[index] = item
  }
}
