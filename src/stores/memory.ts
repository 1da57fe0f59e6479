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
import {
  type CleanupOptions,
  getNow,
  type KeyedStoreRecord,
  type Store,
  type StoreRecord,
  type StoreStats,
  updateNow,
} from '../store.js'

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

/** The longest delay `setInterval` honours; larger values silently become 1 ms in Node. */
const MAX_TIMER_DELAY = 2_147_483_647

/**
 * A bounded, self-cleaning in-memory {@link Store}.
 *
 * Data lives in this process only: it is lost on restart and not shared between instances, so use a
 * shared store (SQLite, Redis, PostgreSQL) as soon as you run more than one process.
 *
 * Each record is one Map entry and one flat string (see {@link encodeRecord}): a binary header (expiry,
 * version), the key as its 32 bytes rather than 64 hex digits, the user ID if any, then the data. The Map is
 * keyed by 30 bits of the key (a small integer V8 keeps inside the entry, with no string to allocate or hash),
 * and its insertion order is the LRU order. The expiry heap is two parallel number arrays.
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

  static {
    // Marks `get` and `update` as the ones `[getNow]` and `[updateNow]` mirror (see store.ts).
    Object.defineProperty(MemoryStore.prototype.get, getNow, { value: true })
    Object.defineProperty(MemoryStore.prototype.update, updateNow, { value: true })
  }
  /**
   * Key hash → its record, or the records of the keys sharing that hash (a few in a million sessions), least
   * recently used first. A Map iterates in insertion order, so re-inserting on use makes its first entry the
   * least recently used.
   */
  readonly #records = new Map<number, string | string[]>()
  #size = 0
  /** userId → keys bound to that user. Kept exact on every write, eviction, expiry and destroy. */
  readonly #byUser = new Map<string, Set<string>>()
  readonly #expiry = new ExpiryHeap()
  readonly #maxSessions: number
  readonly #clock: () => number
  #timer: ReturnType<typeof setInterval> | undefined
  #evictions = 0
  #lastCleanupVisited = 0
  /** The hash of the Map's last entry (the most recently used), or -1 when not known. */
  #last = -1
  /** The record #find() matched last, and the key it matched. */
  #found = ''
  #foundKey: string | undefined

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
      // Node: the sweep must not keep the process alive. Browsers and Workers return a number, with no unref().
      ;(this.#timer as { unref?: () => void }).unref?.()
    }
  }

  /** Records held right now, including expired ones the sweep has not reached yet. */
  get size(): number {
    return this.#size
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
    return this[getNow](key, now)
  }

  /** @internal `get` without the promise, for the manager (see {@link getNow}). */
  [getNow](key: string, now: number): StoreRecord | undefined {
    const hash = hashOf(key)
    const record = this.#find(key, hash)
    if (record === undefined) return undefined
    const expiresAt = expiryOf(record)
    if (expiresAt <= now) {
      // Expired: free it now rather than waiting for the sweep.
      this.#remove(hash, record)
      return undefined
    }
    this.#markUsed(hash, record)
    return toRecord(record, expiresAt)
  }

  async create(key: string, record: StoreRecord, now: number): Promise<boolean> {
    const hash = hashOf(key)
    const previous = this.#find(key, hash)
    if (previous !== undefined && expiryOf(previous) > now) return false
    this.#write(key, hash, previous, record.data, record.expiresAt, record.version, record.userId)
    if (this.#size > this.#maxSessions) {
      // Reclaim expired records before sacrificing a live one; cheap, since it only visits expired ones.
      this.#sweep(now)
      while (this.#size > this.#maxSessions) {
        const [oldestHash, bucket] = this.#records.entries().next().value as [number, string | string[]]
        this.#remove(oldestHash, typeof bucket === 'string' ? bucket : bucket[0]!)
        this.#evictions++
      }
    }
    return true
  }

  async update(key: string, record: StoreRecord, expectedVersion: number, now: number): Promise<boolean> {
    return this[updateNow](key, record, expectedVersion, now)
  }

  /** @internal `update` without the promise, for the manager (see {@link updateNow}). */
  [updateNow](key: string, record: StoreRecord, expectedVersion: number, now: number): boolean {
    const hash = hashOf(key)
    const current = this.#find(key, hash)
    if (current === undefined || expiryOf(current) <= now || versionOf(current) !== expectedVersion)
      return false
    this.#write(key, hash, current, record.data, record.expiresAt, record.version, record.userId)
    return true
  }

  async touch(key: string, expiresAt: number, now: number): Promise<boolean> {
    const hash = hashOf(key)
    const current = this.#find(key, hash)
    if (current === undefined) return false
    const currentExpiry = expiryOf(current)
    if (currentExpiry <= now) return false
    if (expiresAt > currentExpiry) {
      this.#write(key, hash, current, dataOf(current), expiresAt, versionOf(current), userIdOf(current))
    } else {
      this.#markUsed(hash, current)
    }
    return true
  }

  async destroy(key: string): Promise<void> {
    const hash = hashOf(key)
    const record = this.#find(key, hash)
    if (record !== undefined) this.#remove(hash, record)
  }

  async listByUser(userId: string, now: number): Promise<KeyedStoreRecord[]> {
    const result: KeyedStoreRecord[] = []
    for (const key of this.#byUser.get(userId) ?? []) {
      const record = this.#find(key, hashOf(key))
      if (record === undefined) continue
      const expiresAt = expiryOf(record)
      if (expiresAt > now) result.push({ key, record: toRecord(record, expiresAt) })
    }
    return result
  }

  async destroyByUser(userId: string, options: { exceptKey?: string | undefined } = {}): Promise<number> {
    // Copy first: #remove edits the set we would be iterating.
    const keys = [...(this.#byUser.get(userId) ?? [])]
    let deleted = 0
    for (const key of keys) {
      if (key === options.exceptKey) continue
      const hash = hashOf(key)
      const record = this.#find(key, hash)
      if (record === undefined) continue
      this.#remove(hash, record)
      deleted++
    }
    return deleted
  }

  /**
   * Counts the records held at `now`: live ones, expired ones the sweep has not deleted yet, and the UTF-8
   * bytes of their data (both kinds: everything held). It reads every record.
   */
  async stats(now: number): Promise<StoreStats> {
    let live = 0
    let expired = 0
    let bytes = 0
    const count = (record: string) => {
      if (expiryOf(record) > now) live++
      else expired++
      bytes += utf8Length(record, dataStart(record))
    }
    for (const bucket of this.#records.values()) {
      if (typeof bucket === 'string') count(bucket)
      else for (const record of bucket) count(record)
    }
    return { live, expired, bytes }
  }

  /** Deletes the records expired at `now` in one step; `onProgress` hears the count once, if any were. */
  async cleanup(now: number, options?: CleanupOptions): Promise<number> {
    const deleted = this.#sweep(now)
    if (deleted > 0) options?.onProgress?.(deleted)
    return deleted
  }

  /** Stops the sweep timer. The records stay readable: there is nothing else to release. Idempotent. */
  async close(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** The record stored under `key`, live or not. */
  #find(key: string, hash: number): string | undefined {
    const bucket = this.#records.get(hash)
    if (bucket === undefined) return undefined
    if (typeof bucket !== 'string') {
      for (const record of bucket) if (keyMatches(record, key)) return record
      return undefined
    }
    // A request reads a record, then writes it: the second lookup need not compare the key again.
    if (bucket === this.#found && key === this.#foundKey) return bucket
    if (!keyMatches(bucket, key)) return undefined
    this.#remember(key, bucket)
    return bucket
  }

  #remember(key: string, record: string): void {
    this.#foundKey = key
    this.#found = record
  }

  #write(
    key: string,
    hash: number,
    previous: string | undefined,
    data: string,
    expiresAt: number,
    version: number,
    userId: string | undefined,
  ): void {
    const previousUser = previous === undefined ? undefined : userIdOf(previous)
    if (previousUser !== userId) {
      if (previousUser !== undefined) this.#unindex(key, previousUser)
      if (userId !== undefined) this.#index(key, userId)
    }
    // A rewrite copies the key's bytes from the record it replaces instead of decoding the hex again.
    const record = encodeRecord(
      expiresAt,
      version,
      previous === undefined ? keyFieldOf(key) : keyFieldIn(previous),
      userId,
      data,
    )
    this.#place(hash, previous, record)
    this.#remember(key, record)
    if (previous === undefined) this.#size++
    // The previous heap entry of this key goes stale; the sweep or the next compaction discards it.
    this.#expiry.push(hash, expiresAt)
    if (this.#expiry.size > 2 * this.#size + 1024) this.#rebuildExpiry()
  }

  /** Puts `record` in place of `previous` (or beside the other records of `hash`), as the most recently used. */
  #place(hash: number, previous: string | undefined, record: string): void {
    const records = this.#records
    const bucket = records.get(hash)
    // Setting a key keeps its place: moving it to the end takes a delete first, unless it is there already
    // (a write right after the read that moved it).
    if (hash !== this.#last) records.delete(hash)
    this.#last = hash
    if (bucket === undefined || bucket === previous) records.set(hash, record)
    else if (typeof bucket === 'string') records.set(hash, [bucket, record])
    else {
      const index = previous === undefined ? -1 : bucket.indexOf(previous)
      if (index >= 0) bucket.splice(index, 1)
      bucket.push(record)
      records.set(hash, bucket)
    }
  }

  #markUsed(hash: number, record: string): void {
    const records = this.#records
    const bucket = records.get(hash)!
    if (typeof bucket !== 'string') {
      bucket.splice(bucket.indexOf(record), 1)
      bucket.push(record)
    }
    if (hash === this.#last) return
    records.delete(hash)
    records.set(hash, bucket)
    this.#last = hash
  }

  #remove(hash: number, record: string): void {
    const records = this.#records
    const bucket = records.get(hash)
    if (bucket === record) {
      records.delete(hash)
      if (hash === this.#last) this.#last = -1
    } else if (bucket !== undefined && typeof bucket !== 'string') {
      const index = bucket.indexOf(record)
      if (index < 0) return
      bucket.splice(index, 1)
      // Setting an existing key keeps its place in the LRU order.
      if (bucket.length === 1) records.set(hash, bucket[0]!)
    } else return
    this.#size--
    const userId = userIdOf(record)
    if (userId !== undefined) this.#unindex(keyOf(record), userId)
  }

  #index(key: string, userId: string): void {
    const keys = this.#byUser.get(userId)
    if (keys === undefined) this.#byUser.set(userId, new Set([key]))
    else keys.add(key)
  }

  #unindex(key: string, userId: string): void {
    const keys = this.#byUser.get(userId)
    keys?.delete(key)
    if (keys?.size === 0) this.#byUser.delete(userId)
  }

  #rebuildExpiry(): void {
    const hashes: number[] = []
    const times: number[] = []
    for (const [hash, bucket] of this.#records) {
      for (const record of typeof bucket === 'string' ? [bucket] : bucket) {
        hashes.push(hash)
        times.push(expiryOf(record))
      }
    }
    this.#expiry.rebuild(hashes, times)
  }

  /**
   * Deletes every record expired at `now`. It pops heap entries in expiry order and stops at the first
   * live one, so it visits only expired records and superseded entries (each paid for by the write that
   * superseded it). A clock jump of years costs nothing extra: there are no empty time slots to walk.
   */
  #sweep(now: number): number {
    const heap = this.#expiry
    let visited = 0
    let deleted = 0
    while (heap.size > 0 && heap.peekTime() <= now) {
      const hash = heap.pop()
      visited++
      // A superseded entry names a record that is gone or expires later; an expired record is due either way.
      const bucket = this.#records.get(hash)
      if (bucket === undefined) continue
      for (const record of typeof bucket === 'string' ? [bucket] : [...bucket]) {
        if (expiryOf(record) > now) continue
        this.#remove(hash, record)
        deleted++
      }
    }
    this.#lastCleanupVisited = visited
    return deleted
  }
}

// ------------------------------------------------------------------------------------------------- keys

const HEX = '0123456789abcdef'
/**
 * Two lower-case hex digits (their codes, 7 bits each) → the byte they spell, or -1. A code above 127 wraps
 * into the table, so the check below also looks at the high bits.
 */
const HEX_PAIR = new Int16Array(1 << 14).fill(-1)
for (let high = 0; high < 16; high++) {
  for (let low = 0; low < 16; low++) {
    HEX_PAIR[(HEX.charCodeAt(high) << 7) | HEX.charCodeAt(low)] = (high << 4) | low
  }
}
const HASH_MASK = 0x3fff_ffff // 30 bits: a small integer on every V8 build, stored inside the Map entry

// The key hashOf() read last: its 32 bytes when it is a digest, for keyMatches() and keyFieldOf() to use
// without reading the hex again.
const keyBytes = new Uint8Array(32)
let parsedKey: string | undefined
let parsedDigest = false
let parsedHash = 0

/**
 * The Map key of `key`: 30 bits mixed from all of it (keys that differ in one character, a counter say, stay
 * apart). A SHA-256 in lower-case hex (every key the manager writes) is decoded on the way, into `keyBytes`;
 * any other key goes through FNV-1a. Keys sharing a hash share an entry, and the record decides.
 */
function hashOf(key: string): number {
  // A request reads, then writes, the same key (the same string): decode it once.
  if (key === parsedKey) return parsedHash
  parsedKey = key
  parsedHash = hashOfNew(key)
  return parsedHash
}

function hashOfNew(key: string): number {
  if (key.length === 64) {
    let hash = 0
    let bad = 0
    let codes = 0
    for (let word = 0; word < 8; word++) {
      let value = 0
      for (let j = 0; j < 4; j++) {
        const high = key.charCodeAt(8 * word + 2 * j)
        const low = key.charCodeAt(8 * word + 2 * j + 1)
        const byte = HEX_PAIR[((high << 7) | low) & 0x3fff]!
        // -1 for a pair that is not two lower-case hex digits; a code above 127 also wraps in the table.
        bad |= byte
        codes |= high | low
        keyBytes[4 * word + j] = byte
        value = (value << 8) | (byte & 255)
      }
      hash = Math.imul(hash ^ value, 0x9e3779b1)
    }
    parsedDigest = bad >= 0 && codes < 128
    if (parsedDigest) return (hash ^ (hash >>> 15)) & HASH_MASK
  }
  parsedDigest = false
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193)
  return (hash ^ (hash >>> 15)) & HASH_MASK
}

/** The key field of a new record: the 32 bytes of a hex digest, or a length and the key as it is. */
function keyFieldOf(key: string): string {
  if (parsedKey !== key) hashOf(key)
  if (!parsedDigest) return lengthField(key.length) + key
  const b = keyBytes
  // biome-ignore format: one call with the 32 bytes; spread and apply go through a slow builtin
  return String.fromCharCode(b[0]!, b[1]!, b[2]!, b[3]!, b[4]!, b[5]!, b[6]!, b[7]!, b[8]!, b[9]!, b[10]!, b[11]!, b[12]!, b[13]!, b[14]!, b[15]!, b[16]!, b[17]!, b[18]!, b[19]!, b[20]!, b[21]!, b[22]!, b[23]!, b[24]!, b[25]!, b[26]!, b[27]!, b[28]!, b[29]!, b[30]!, b[31]!)
}

function lengthField(length: number): string {
  return String.fromCharCode(length >>> 16, (length >>> 8) & 255, length & 255)
}

function lengthAt(record: string, at: number): number {
  return (record.charCodeAt(at) << 16) | (record.charCodeAt(at + 1) << 8) | record.charCodeAt(at + 2)
}

/** The key field of `record`, as it is stored. */
function keyFieldIn(record: string): string {
  const start = headerLength(record.charCodeAt(0))
  return record.slice(start, userStart(record, start))
}

function keyMatches(record: string, key: string): boolean {
  const tag = record.charCodeAt(0)
  const start = headerLength(tag)
  if ((tag & RAW_KEY) !== 0) {
    return lengthAt(record, start) === key.length && record.startsWith(key, start + 3)
  }
  if (parsedKey !== key) hashOf(key)
  if (!parsedDigest) return false
  const bytes = keyBytes
  for (let i = 0; i < 32; i++) if (record.charCodeAt(start + i) !== bytes[i]) return false
  return true
}

/** The key `record` is stored under, as the caller wrote it. */
function keyOf(record: string): string {
  const tag = record.charCodeAt(0)
  const start = headerLength(tag)
  if ((tag & RAW_KEY) !== 0) return record.slice(start + 3, start + 3 + lengthAt(record, start))
  let key = ''
  for (let i = start; i < start + 32; i++) {
    const byte = record.charCodeAt(i)
    key += HEX[byte >> 4]! + HEX[byte & 15]!
  }
  return key
}

// ----------------------------------------------------------------------------------------------- records

/*
 * A record is one flat string:
 *
 *   header  compact (the usual case): [tag] [expiresAt: 6 bytes] [version: n bytes], big-endian, when
 *             expiresAt is an integer in [0, 2^48) and version one in [0, 2^48); tag bits 0-2 hold n (1-6);
 *           exact (anything else): [tag] [expiresAt: float64] [version: float64], tag bit 7 set;
 *           tag bit 3: a user ID follows the key; tag bit 4: the key is kept as written, not as a digest;
 *   key     the 32 bytes of the digest, or [length: 3 bytes] and the key;
 *   user    [length: 3 bytes] and the user ID, when tag bit 3 is set;
 *   data    exactly as given, to the end.
 *
 * Every character but those of a raw key, a user ID and the data is in 0-255, so a record is a one-byte
 * string whenever they are.
 */
const HAS_USER = 8
const RAW_KEY = 16
const EXACT = 128
const TWO_24 = 16_777_216
const TWO_48 = 2 ** 48
const scratch = new DataView(new ArrayBuffer(8))

function encodeRecord(
  expiresAt: number,
  version: number,
  keyField: string,
  userId: string | undefined,
  data: string,
): string {
  const flags = (userId === undefined ? 0 : HAS_USER) | (keyField.length === 32 ? 0 : RAW_KEY)
  const header = recordHeader(expiresAt, version, flags)
  // A string built by `+` is a rope pointing at its parts (and at JSON.stringify's own rope): reading one
  // character makes V8 copy it into one flat string, which is all the next scavenge keeps.
  const record =
    userId === undefined
      ? header + keyField + data
      : header + keyField + lengthField(userId.length) + userId + data
  record.charCodeAt(0)
  return record
}

function recordHeader(expiresAt: number, version: number, flags: number): string {
  const compact =
    Number.isInteger(expiresAt) &&
    expiresAt >= 0 &&
    expiresAt < TWO_48 &&
    Number.isInteger(version) &&
    version >= 0 &&
    version < TWO_48
  if (!compact) {
    let header = String.fromCharCode(EXACT | flags)
    for (const value of [expiresAt, version]) {
      scratch.setFloat64(0, value)
      for (let i = 0; i < 8; i++) header += String.fromCharCode(scratch.getUint8(i))
    }
    return header
  }
  const high = Math.floor(expiresAt / TWO_24)
  const low = expiresAt - high * TWO_24
  const e0 = high >>> 16
  const e1 = (high >>> 8) & 255
  const e2 = high & 255
  const e3 = low >>> 16
  const e4 = (low >>> 8) & 255
  const e5 = low & 255
  if (version < 256) return String.fromCharCode(1 | flags, e0, e1, e2, e3, e4, e5, version)
  let size = 2
  while (size < 6 && version >= 256 ** size) size++
  let header = String.fromCharCode(size | flags, e0, e1, e2, e3, e4, e5)
  for (let shift = size - 1; shift >= 0; shift--) {
    header += String.fromCharCode(Math.floor(version / 256 ** shift) % 256)
  }
  return header
}

function headerLength(tag: number): number {
  return (tag & EXACT) !== 0 ? 17 : 7 + (tag & 7)
}

/** Where the user field (or the data, without one) begins, after the key field that begins at `keyStart`. */
function userStart(record: string, keyStart: number): number {
  return (record.charCodeAt(0) & RAW_KEY) !== 0 ? keyStart + 3 + lengthAt(record, keyStart) : keyStart + 32
}

function dataStart(record: string): number {
  const tag = record.charCodeAt(0)
  const start = userStart(record, headerLength(tag))
  return (tag & HAS_USER) === 0 ? start : start + 3 + lengthAt(record, start)
}

function expiryOf(record: string): number {
  if ((record.charCodeAt(0) & EXACT) !== 0) return exactAt(record, 1)
  const high = (record.charCodeAt(1) << 16) | (record.charCodeAt(2) << 8) | record.charCodeAt(3)
  const low = (record.charCodeAt(4) << 16) | (record.charCodeAt(5) << 8) | record.charCodeAt(6)
  return high * TWO_24 + low
}

function versionOf(record: string): number {
  const tag = record.charCodeAt(0)
  if ((tag & EXACT) !== 0) return exactAt(record, 9)
  let version = 0
  for (let i = 7; i < 7 + (tag & 7); i++) version = version * 256 + record.charCodeAt(i)
  return version
}

function exactAt(record: string, offset: number): number {
  for (let i = 0; i < 8; i++) scratch.setUint8(i, record.charCodeAt(offset + i))
  return scratch.getFloat64(0)
}

function userIdOf(record: string): string | undefined {
  const tag = record.charCodeAt(0)
  if ((tag & HAS_USER) === 0) return undefined
  const start = userStart(record, headerLength(tag))
  return record.slice(start + 3, start + 3 + lengthAt(record, start))
}

function dataOf(record: string): string {
  return record.slice(dataStart(record))
}

function toRecord(record: string, expiresAt: number): StoreRecord {
  const data = dataOf(record)
  const version = versionOf(record)
  const userId = userIdOf(record)
  return userId === undefined ? { data, expiresAt, version } : { data, expiresAt, version, userId }
}

/** UTF-8 bytes of `text` from `start`, without copying it; a lone surrogate counts as U+FFFD (3 bytes). */
function utf8Length(text: string, start: number): number {
  let bytes = text.length - start
  for (let i = start; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x80) continue
    if (code < 0x800) bytes += 1
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2 // four bytes for two code units
        i++
      } else bytes += 2
    } else bytes += 2
  }
  return bytes
}

/**
 * A binary min-heap of (expiry, key hash) pairs, with lazy deletion: two parallel arrays, no object per entry.
 *
 * Why a heap rather than per-second time buckets: buckets make a touch O(1), but they need one Set per
 * occupied second (a month-long TTL means millions of them) plus an ordered index of the buckets anyway.
 * The heap costs O(log n) per write and nothing on reads. Superseded entries stay until they surface or
 * until the heap outgrows twice the live count, when it is rebuilt in O(n); both costs are amortised over
 * the writes that created them.
 */
class ExpiryHeap {
  #hashes: number[] = []
  #times: number[] = []

  get size(): number {
    return this.#hashes.length
  }

  /** The earliest expiry; call only when the heap is not empty. */
  peekTime(): number {
    return this.#times[0]!
  }

  push(hash: number, time: number): void {
    this.#hashes.push(hash)
    this.#times.push(time)
    this.#siftUp(this.#hashes.length - 1, hash, time)
  }

  /** Removes the earliest entry and returns its hash; call only when the heap is not empty. */
  pop(): number {
    const hashes = this.#hashes
    const times = this.#times
    const top = hashes[0]!
    const lastHash = hashes.pop()!
    const lastTime = times.pop()!
    if (hashes.length > 0) this.#siftDown(0, lastHash, lastTime)
    return top
  }

  /** Replaces the contents with these entries (Floyd's O(n) heapify). */
  rebuild(hashes: number[], times: number[]): void {
    this.#hashes = hashes
    this.#times = times
    for (let i = (hashes.length >>> 1) - 1; i >= 0; i--) this.#siftDown(i, hashes[i]!, times[i]!)
  }

  #siftUp(index: number, hash: number, time: number): void {
    const hashes = this.#hashes
    const times = this.#times
    while (index > 0) {
      const parent = (index - 1) >>> 1
      if (times[parent]! <= time) break
      hashes[index] = hashes[parent]!
      times[index] = times[parent]!
      index = parent
    }
    hashes[index] = hash
    times[index] = time
  }

  #siftDown(index: number, hash: number, time: number): void {
    const hashes = this.#hashes
    const times = this.#times
    const length = hashes.length
    for (;;) {
      let child = 2 * index + 1
      if (child >= length) break
      const right = child + 1
      if (right < length && times[right]! < times[child]!) child = right
      if (times[child]! >= time) break
      hashes[index] = hashes[child]!
      times[index] = times[child]!
      index = child
    }
    hashes[index] = hash
    times[index] = time
  }
}
