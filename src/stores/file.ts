/**
 * A {@link Store} that keeps one JSON file per session in a directory: durable, readable with `cat`, shared
 * by every process that can reach the directory, and with nothing to install or run.
 *
 * On-disk layout (every name is built from a 64-hex key or a SHA-256 hash, never from client input):
 *
 * ```text
 * <directory>/                      mode 0700
 *   <key>.json                      one session: {"data":…,"expiresAt":…,"version":…,"userId":…}, mode 0600,
 *                                   mtime = expiresAt (a hint that lets cleanup skip reading live files)
 *   users/<sha256(userId)>/<key>    empty marker: session <key> is bound to that user (dirs 0700, files 0600)
 *   <key>.<16 hex>.tmp              transient: a write in progress, renamed over <key>.json when complete
 *   <16 hex>.owner                  one per open store that has taken a lock: {"pid":…,"host":…}, its mtime
 *                                   refreshed every 2.5 s; removed by close()
 *   <key>.lock                      transient: held while one process writes <key>; a hard link to its
 *                                   owner file
 *   cleanup.lock                    transient: held by the process running the periodic sweep
 *   <key|cleanup>.lock.<16 hex>.broken  transient: a stale lock being removed
 * ```
 *
 * Files the store does not recognise are never touched.
 *
 * Subpath: `tessera/file`.
 *
 * @module
 */

import { createHash, randomBytes } from 'node:crypto'
import type { BigIntStats, Stats } from 'node:fs'
import {
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rmdir,
  stat,
  unlink,
  utimes,
} from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { SessionConfigError, StoreError } from '../errors.js'
import type { CleanupOptions, KeyedStoreRecord, Store, StoreRecord, StoreStats } from '../store.js'

/**
 * Options for {@link FileStore}.
 *
 * @example
 * ```ts
 * const store = new FileStore({ directory: './data/sessions', cleanupIntervalMs: 60_000 })
 * ```
 */
export interface FileStoreOptions {
  /**
   * Directory holding the session files, created (mode 0700, with its parents) if missing; an existing
   * directory keeps its mode. Give each store its own directory, and point every process that should share
   * sessions at the same one. Resolved against the working directory once, at construction.
   */
  directory: string
  /**
   * How often the background sweep deletes expired files, in milliseconds. `0` disables the timer (run
   * {@link FileStore.cleanup} from a job instead). The timer never keeps the process alive, and when several
   * processes share the directory only one of them sweeps at a time.
   * @default 300_000
   */
  cleanupIntervalMs?: number | undefined
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

/** Store keys are the manager's SHA-256 hex; nothing else ever becomes part of a path. */
const KEY = /^[0-9a-f]{64}$/
const RECORD_FILE = /^([0-9a-f]{64})\.json$/
const TEMP_FILE = /^([0-9a-f]{64})\.[0-9a-f]{16}\.tmp$/
const KEY_LOCK_FILE = /^[0-9a-f]{64}\.lock$/
const LOCK_LEFTOVER_FILE = /^(?:[0-9a-f]{16}\.owner|(?:[0-9a-f]{64}|cleanup)\.lock\.[0-9a-f]{16}\.broken)$/
const USERS = 'users'
const SWEEP_LOCK = 'cleanup.lock'

/**
 * A lock older than this whose holder cannot be checked (another host) is presumed dead. Locks are held for
 * one read and one small write (milliseconds), so only a crashed holder, or a disk stalled this long, gets
 * here. A holder on this host that has exited is detected at once, without waiting.
 */
const LOCK_STALE_MS = 10_000
/** How long a call waits for a key lock before rejecting: past LOCK_STALE_MS, so a dead lock goes first. */
const LOCK_TIMEOUT_MS = 15_000
/**
 * Cleanup skips reading a record whose mtime (= its expiresAt) is this far beyond `now`. The margin covers
 * filesystems that round mtimes (FAT: 2 s, some NFS servers: 1 s), so a rounded-up mtime cannot hide an
 * expired record; a rounded-down one merely costs a read.
 */
const MTIME_SLACK_MS = 2_000
/** Largest mtime hint written: year 9999. Larger expiries get this; the file content stays the truth. */
const MAX_MTIME_MS = 253_402_300_799_000
/** File operations in flight at once during a sweep or a per-user scan: enough to keep libuv's pool busy. */
const CONCURRENCY = 32
const MAX_TIMER_DELAY = 2_147_483_647
/** What {@link FileStore} reads back from a file that exists but does not hold a valid record. */
const CORRUPT = Symbol('corrupt')

type Loaded = StoreRecord | typeof CORRUPT | undefined

/**
 * A {@link Store} that writes one file per session under a directory, using nothing but `node:fs/promises`.
 *
 * - **Atomic writes.** A record is written to a temporary file (flag `wx`, mode 0600), fsynced, renamed over
 *   `<key>.json`, and the directory is fsynced. A crash leaves the old record or the new one, never a torn
 *   file; cleanup removes the temporary files crashes leave behind. Reads take no lock.
 * - **Compare-and-set across processes.** `create`, `update`, `touch` and deletions hold a per-key lock: an
 *   in-process queue, then a `<key>.lock` file that only one process can create (a hard link, which fails
 *   when the name exists), so every process sharing the directory sees the check and the write as one step.
 *   A lock names its holder, so a lock left by a process that has exited is taken over at once.
 * - **Per-user index** as empty marker files under `users/<sha256(userId)>/`, written (and fsynced) before
 *   the record that needs them, so a crash can leave an extra marker but never a session that "log out
 *   everywhere" misses. Extra markers are ignored by reads and pruned by cleanup.
 * - **Invalid keys** (anything but 64 lowercase hex characters) never reach the filesystem: `get`, `update`
 *   and `touch` treat them as a miss, `destroy` as already done, and `create` rejects with a
 *   {@link StoreError} whose cause is a `TypeError`.
 *
 * The store holds no open file between calls: `close()` stops the background sweep and removes the store's
 * lock owner file, and calls made after it still work.
 *
 * Locking guarantees: exact within one process, and between processes on one host unless a holder's event
 * loop is blocked for 10 s while it holds a lock (its heartbeat stops, and its lock is presumed dead). Across
 * hosts on a network filesystem it relies on `link()` and `rename()` being atomic on the server (NFSv3 and
 * later; on shares without hard links it falls back to exclusive create) and on clocks within a few seconds
 * of each other, since another host's liveness is judged by its heartbeat's mtime. For a fleet of servers
 * prefer a database-backed store.
 *
 * @example
 * ```ts
 * import { FileStore } from 'tessera/file'
 *
 * const store = new FileStore({ directory: './data/sessions' })
 * const manager = createSessionManager({ store, secret })
 * // on shutdown:
 * await store.close()
 * ```
 *
 * @throws {SessionConfigError} from the constructor when an option is invalid.
 */
export class FileStore implements Store {
  readonly #directory: string
  readonly #users: string
  readonly #clock: () => number
  readonly #onCleanupError: (error: StoreError) => void
  readonly #queue = new KeyedQueue()
  #directoryReady: Promise<void> | undefined
  readonly #directorySync = new DirectorySync()
  readonly #locks: Locks
  #timer: ReturnType<typeof setInterval> | undefined
  #sweeping: Promise<void> | undefined

  constructor(options: FileStoreOptions) {
    const {
      directory,
      cleanupIntervalMs = 300_000,
      clock = Date.now,
      onCleanupError = (error: StoreError) => process.emitWarning(error),
    } = (options ?? {}) as Partial<FileStoreOptions>
    if (typeof directory !== 'string' || directory === '' || directory.includes('\0')) {
      throw new SessionConfigError(
        `FileStore: directory must be a non-empty path, got ${JSON.stringify(directory)}`,
      )
    }
    if (
      !Number.isInteger(cleanupIntervalMs) ||
      cleanupIntervalMs < 0 ||
      cleanupIntervalMs > MAX_TIMER_DELAY
    ) {
      throw new SessionConfigError(
        `FileStore: cleanupIntervalMs must be an integer from 0 to ${MAX_TIMER_DELAY}, got ${cleanupIntervalMs}`,
      )
    }
    if (typeof clock !== 'function') throw new SessionConfigError('FileStore: clock must be a function')
    if (typeof onCleanupError !== 'function') {
      throw new SessionConfigError('FileStore: onCleanupError must be a function')
    }
    this.#directory = resolve(directory)
    this.#users = join(this.#directory, USERS)
    this.#locks = new Locks(this.#directory)
    this.#clock = clock
    this.#onCleanupError = onCleanupError
    // Start creating the directory now; a failure surfaces (and is retried) on the first call.
    this.#ensureDirectory().catch(() => {})
    if (cleanupIntervalMs > 0) {
      this.#timer = setInterval(() => this.#sweepInBackground(), cleanupIntervalMs)
      this.#timer.unref()
    }
  }

  /** The absolute path of the directory this store writes to. */
  get directory(): string {
    return this.#directory
  }

  async get(key: string, now: number): Promise<StoreRecord | undefined> {
    if (!KEY.test(key)) return undefined
    return this.#run('get', async () => live(await this.#load(key), now))
  }

  /**
   * @throws {StoreError} with a `TypeError` cause when `key` is not 64 lowercase hex characters, or when
   * `record` cannot be stored as written (non-finite `expiresAt`, non-integer `version`).
   */
  async create(key: string, record: StoreRecord, now: number): Promise<boolean> {
    const next = checkRecord('create', record)
    if (!KEY.test(key)) {
      throw new StoreError('FileStore: create failed', {
        cause: new TypeError('FileStore: a key must be 64 lowercase hex characters (a SHA-256 digest)'),
      })
    }
    return this.#run('create', () =>
      this.#withKeyLock(key, async () => {
        const current = await this.#load(key)
        if (live(current, now) !== undefined) return false
        if (next.userId !== undefined) await this.#addMarker(next.userId, key)
        await this.#write(key, next)
        const previousUser = current === CORRUPT ? undefined : current?.userId
        if (previousUser !== undefined && previousUser !== next.userId) {
          await this.#dropMarker(previousUser, key)
        }
        return true
      }),
    )
  }

  async update(key: string, record: StoreRecord, expectedVersion: number, now: number): Promise<boolean> {
    const next = checkRecord('update', record)
    if (!KEY.test(key)) return false
    return this.#run('update', () =>
      this.#withKeyLock(key, async () => {
        const current = live(await this.#load(key), now)
        if (current?.version !== expectedVersion) return false
        if (next.userId !== undefined && next.userId !== current.userId) {
          await this.#addMarker(next.userId, key)
        }
        await this.#write(key, next)
        if (current.userId !== undefined && current.userId !== next.userId) {
          await this.#dropMarker(current.userId, key)
        }
        return true
      }),
    )
  }

  async touch(key: string, expiresAt: number, now: number): Promise<boolean> {
    if (!KEY.test(key)) return false
    return this.#run('touch', () =>
      this.#withKeyLock(key, async () => {
        const current = live(await this.#load(key), now)
        if (current === undefined) return false
        if (expiresAt > current.expiresAt) await this.#write(key, { ...current, expiresAt })
        return true
      }),
    )
  }

  async destroy(key: string): Promise<void> {
    if (!KEY.test(key)) return
    await this.#run('destroy', () =>
      this.#withKeyLock(key, async () => {
        const current = await this.#load(key)
        if (current === undefined) return
        await unlinkIfPresent(this.#recordPath(key))
        // A logout that a power cut undoes would be a security bug, so the unlink is made durable.
        await this.#directorySync.sync(this.#directory)
        if (current !== CORRUPT && current.userId !== undefined) await this.#dropMarker(current.userId, key)
      }),
    )
  }

  /**
   * Reads the user's markers and their records without taking locks. Markers whose record is gone, expired or
   * bound to someone else are skipped; cleanup prunes them.
   */
  async listByUser(userId: string, now: number): Promise<KeyedStoreRecord[]> {
    return this.#run('listByUser', async () => {
      const result: KeyedStoreRecord[] = []
      await forEach(await this.#markers(userHash(userId)), async (key) => {
        const record = live(await this.#load(key), now)
        if (record?.userId === userId) result.push({ key, record })
      })
      return result
    })
  }

  /**
   * Deletes the user's records one key lock at a time. A failure on one record does not stop the others;
   * the call then rejects with the first error.
   */
  async destroyByUser(userId: string, options: { exceptKey?: string | undefined } = {}): Promise<number> {
    return this.#run('destroyByUser', async () => {
      const hash = userHash(userId)
      const markers = await this.#markers(hash)
      const keys = markers.filter((key) => key !== options.exceptKey)
      let deleted = 0
      try {
        await forEach(keys, (key) =>
          this.#withKeyLock(key, async () => {
            const current = await this.#load(key)
            if (current !== undefined && current !== CORRUPT && current.userId === userId) {
              await unlinkIfPresent(this.#recordPath(key))
              deleted++
            }
            // Under the key lock no writer can be re-adding this marker, so it is safe to drop in every case.
            await unlinkIfPresent(join(this.#users, hash, key))
          }),
        )
      } finally {
        if (deleted > 0) await this.#directorySync.sync(this.#directory)
      }
      if (keys.length === markers.length) await this.#removeUserDirectory(hash)
      return deleted
    })
  }

  /**
   * Reads every record file (without locks, like `get`) and counts live and expired records and the bytes of
   * their data. Files that do not hold a valid record are not counted.
   */
  async stats(now: number): Promise<StoreStats> {
    return this.#run('stats', async () => {
      let live = 0
      let expired = 0
      let bytes = 0
      const keys: string[] = []
      for (const name of await readdir(this.#directory)) {
        const record = RECORD_FILE.exec(name)
        if (record !== null) keys.push(record[1]!)
      }
      await forEach(keys, async (key) => {
        const loaded = await this.#load(key)
        if (loaded === undefined || loaded === CORRUPT) return // deleted meanwhile, or not a record
        if (loaded.expiresAt > now) live++
        else expired++
        bytes += Buffer.byteLength(loaded.data, 'utf8')
      })
      return { live, expired, bytes }
    })
  }

  /**
   * Deletes the records expired at `now` (and corrupt record files, which are not counted), stray temporary
   * files, stale locks and user markers that point nowhere. Records whose mtime says they are live are not
   * read. Every deletion happens under the key's lock after a second look, so a sweep racing a write, or
   * another sweep, never deletes a record that was just written and never counts one twice. A file that
   * cannot be handled does not stop the sweep; the call then rejects with the first error. `onProgress`
   * hears the running total after each record deleted.
   */
  async cleanup(now: number, options: CleanupOptions = {}): Promise<number> {
    return this.#run('cleanup', () => this.#sweep(now, options.onProgress))
  }

  /**
   * Stops the sweep timer, waits for a sweep in progress and removes this store's lock owner file.
   * Idempotent.
   */
  async close(): Promise<void> {
    clearInterval(this.#timer)
    this.#timer = undefined
    await this.#sweeping
    await this.#locks.close()
  }

  #recordPath(key: string): string {
    return join(this.#directory, `${key}.json`)
  }

  #ensureDirectory(): Promise<void> {
    this.#directoryReady ??= mkdir(this.#directory, { recursive: true, mode: 0o700 }).then(
      () => undefined,
      (error: unknown) => {
        this.#directoryReady = undefined // let the next call try again (a volume mounted late, say)
        throw error
      },
    )
    return this.#directoryReady
  }

  /** Runs one public operation: directory first, and every error other than our own wrapped in StoreError. */
  async #run<T>(operation: string, body: () => Promise<T>): Promise<T> {
    try {
      await this.#ensureDirectory()
      return await body()
    } catch (error) {
      if (error instanceof StoreError) throw error
      throw new StoreError(`FileStore: ${operation} failed`, { cause: error })
    }
  }

  /**
   * Runs `body` while holding the key's lock. The in-process queue comes first so that calls from this
   * process wait their turn in order instead of polling the lock file against each other; the lock file
   * then excludes other processes. Reads never lock: rename makes every write appear whole.
   */
  #withKeyLock<T>(key: string, body: () => Promise<T>): Promise<T> {
    return this.#queue.run(key, async () => {
      const path = join(this.#directory, `${key}.lock`)
      const lock = await this.#locks.acquire(path, true)
      try {
        return await body()
      } finally {
        await this.#locks.release(lock)
      }
    })
  }

  async #load(key: string): Promise<Loaded> {
    let text: string
    try {
      text = await readFile(this.#recordPath(key), 'utf8')
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined
      throw error
    }
    return parseRecord(text) ?? CORRUPT
  }

  /** Replaces `<key>.json` atomically and durably; see the class notes. */
  async #write(key: string, record: StoreRecord): Promise<void> {
    const temp = join(this.#directory, `${key}.${randomHex(8)}.tmp`)
    const handle = await open(temp, 'wx', 0o600)
    let renamed = false
    try {
      try {
        await handle.writeFile(serializeRecord(record))
        const mtime = Math.min(Math.max(record.expiresAt, 0), MAX_MTIME_MS) / 1000
        await handle.utimes(mtime, mtime)
        await handle.sync() // without this, a power cut after the rename can leave an empty file
      } finally {
        await handle.close()
      }
      await rename(temp, this.#recordPath(key))
      renamed = true
    } finally {
      if (!renamed) await unlinkIfPresent(temp).catch(() => {})
    }
    await this.#directorySync.sync(this.#directory)
  }

  /** Creates the user's marker for `key` durably, before the record that relies on it is written. */
  async #addMarker(userId: string, key: string): Promise<void> {
    const userDirectory = join(this.#users, userHash(userId))
    for (let attempt = 1; ; attempt++) {
      const created = await mkdir(userDirectory, { recursive: true, mode: 0o700 })
      try {
        await (await open(join(userDirectory, key), 'a', 0o600)).close()
      } catch (error) {
        // A sweep removed the (then empty) directory between our mkdir and open: make it again.
        if (errorCode(error) === 'ENOENT' && attempt < 5) continue
        throw error
      }
      await this.#directorySync.sync(userDirectory)
      if (created !== undefined) {
        await this.#directorySync.sync(this.#users)
        if (created === this.#users) await this.#directorySync.sync(this.#directory)
      }
      return
    }
  }

  /**
   * Removes a marker once the record no longer needs it. Never throws: the record is already committed, and a
   * leftover marker is harmless (listings check each record's userId, and cleanup prunes it).
   */
  async #dropMarker(userId: string, key: string): Promise<void> {
    await unlinkIfPresent(join(this.#users, userHash(userId), key)).catch(() => {})
  }

  /** The keys marked in a user's index directory. */
  async #markers(hash: string): Promise<string[]> {
    try {
      return (await readdir(join(this.#users, hash))).filter((name) => KEY.test(name))
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return []
      throw error
    }
  }

  async #sweep(now: number, onProgress?: CleanupOptions['onProgress']): Promise<number> {
    const records: string[] = []
    const temps = new Map<string, string[]>()
    const locks: string[] = []
    const leftovers: string[] = []
    for (const name of await readdir(this.#directory)) {
      const record = RECORD_FILE.exec(name)
      const temp = TEMP_FILE.exec(name)
      if (record !== null) records.push(record[1]!)
      else if (temp !== null) temps.set(temp[1]!, [...(temps.get(temp[1]!) ?? []), name])
      else if (KEY_LOCK_FILE.test(name)) locks.push(name)
      else if (LOCK_LEFTOVER_FILE.test(name)) leftovers.push(name)
    }

    // One file that cannot be handled must not stall every sweep after it: each pass runs to the end, and
    // the first error is thrown once all have.
    const errors: unknown[] = []
    const pass = (work: Promise<void>) => work.catch((error: unknown) => void errors.push(error))

    // Dead locks first, so the passes below do not wait on them.
    await pass(forEach(locks, (name) => breakIfStale(join(this.#directory, name))))
    await pass(forEach(leftovers, (name) => removeLockLeftover(join(this.#directory, name))))

    let deleted = 0
    const present = new Set(records)
    await pass(
      forEach(records, async (key) => {
        const path = this.#recordPath(key)
        const info = await statIfPresent(path)
        if (info === undefined) {
          present.delete(key)
          return
        }
        if (info.mtimeMs > now + MTIME_SLACK_MS) return // live by its mtime: not worth a read
        // Near the edge, or an mtime someone else set: read before taking the lock, which costs more.
        if (info.mtimeMs > now && live(await this.#load(key), now) !== undefined) return
        await this.#withKeyLock(key, async () => {
          const current = await this.#load(key) // again: a writer may have replaced it meanwhile
          if (live(current, now) !== undefined) return
          if (current !== undefined) await unlinkIfPresent(path)
          present.delete(key)
          if (current === undefined || current === CORRUPT) return
          deleted++
          onProgress?.(deleted)
          if (current.userId !== undefined) await this.#dropMarker(current.userId, key)
        })
      }),
    )

    // Writers create temporary files only while holding the key lock, so once we hold it, any that remain
    // belong to a write that crashed.
    await pass(
      forEach(temps, ([key, names]) =>
        this.#withKeyLock(key, async () => {
          for (const name of names) await unlinkIfPresent(join(this.#directory, name))
        }),
      ),
    )

    await pass(this.#pruneIndex(present))
    if (errors.length > 0) throw errors[0]
    return deleted
  }

  /**
   * Drops markers whose record is gone, and then user directories left empty. A marker whose record exists
   * but is bound to someone else (a crash between an update's write and its marker removal) is kept until
   * that record goes: finding it would mean reading every bound record on every sweep.
   */
  async #pruneIndex(present: ReadonlySet<string>): Promise<void> {
    let hashes: string[]
    try {
      hashes = (await readdir(this.#users)).filter((name) => KEY.test(name))
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return
      throw error
    }
    await forEach(hashes, async (hash) => {
      const userDirectory = join(this.#users, hash)
      const markers = await this.#markers(hash)
      let remaining = markers.length
      for (const key of markers) {
        if (present.has(key)) continue
        await this.#withKeyLock(key, async () => {
          // Look again under the lock: a create adds its marker first and its record second.
          const current = await this.#load(key)
          const owner = current === undefined || current === CORRUPT ? undefined : current.userId
          if (owner !== undefined && userHash(owner) === hash) return
          await unlinkIfPresent(join(userDirectory, key))
          remaining--
        })
      }
      if (remaining === 0) await this.#removeUserDirectory(hash)
    })
  }

  /** Removes a user's index directory if it is empty. A writer that loses this race makes it again. */
  async #removeUserDirectory(hash: string): Promise<void> {
    try {
      await rmdir(join(this.#users, hash))
    } catch (error) {
      // A writer got in first and added a marker, or another sweep removed it: both fine.
      if (!['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(errorCode(error) ?? '')) throw error
    }
  }

  /**
   * The timer's sweep. When several processes share the directory, the one holding `cleanup.lock` sweeps
   * and the others skip their turn; the holder refreshes the lock's mtime so that a long sweep does not look
   * dead to another host.
   */
  #sweepInBackground(): void {
    if (this.#sweeping !== undefined) return // the previous sweep is still working through a backlog
    const path = join(this.#directory, SWEEP_LOCK)
    this.#sweeping = this.#run('cleanup', async () => {
      const lock = await this.#locks.acquire(path, false)
      if (lock === undefined) return
      // A hard-linked lock shares the owner file's heartbeat; one made by exclusive create needs its own.
      const heartbeat = setInterval(() => {
        const seconds = Date.now() / 1000
        lock.handle?.utimes(seconds, seconds).catch(() => {})
      }, LOCK_STALE_MS / 4)
      heartbeat.unref()
      try {
        await this.#sweep(this.#clock())
      } finally {
        clearInterval(heartbeat)
        await this.#locks.release(lock)
      }
    })
      .catch((error: unknown) => {
        this.#onCleanupError(error as StoreError) // #run rejects only with StoreError
      })
      .finally(() => {
        this.#sweeping = undefined
      })
  }
}

/**
 * One promise chain per key, for mutual exclusion inside this process. Entries are deleted when their
 * queue drains, so the map holds only keys with calls in flight.
 */
class KeyedQueue {
  readonly #tails = new Map<string, Promise<void>>()

  async run<T>(key: string, body: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key)
    let done!: () => void
    const tail = new Promise<void>((resolve) => {
      done = resolve
    })
    this.#tails.set(key, tail)
    try {
      await previous
      return await body()
    } finally {
      done()
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }
}

/**
 * Makes directory entries (a rename, an unlink) durable, with group commit: a call resolves after an fsync
 * of the directory that started after the call was made, and every call that arrives while one fsync runs
 * shares the next. Under concurrent writes that is one directory fsync per batch instead of one per write,
 * with the same guarantee for each caller.
 */
class DirectorySync {
  #supported = true
  readonly #slots = new Map<string, { running: Promise<void>; next?: Promise<void> }>()

  sync(path: string): Promise<void> {
    const slot = this.#slots.get(path)
    if (slot === undefined) return this.#start(path)
    // The running fsync may have started before the caller's change, so the caller needs the next one.
    slot.next ??= slot.running.then(
      () => this.#start(path),
      () => this.#start(path),
    )
    return slot.next
  }

  #start(path: string): Promise<void> {
    const slot: { running: Promise<void>; next?: Promise<void> } = { running: this.#fsync(path) }
    slot.running = slot.running.finally(() => {
      if (this.#slots.get(path) === slot) this.#slots.delete(path)
    })
    this.#slots.set(path, slot)
    return slot.running
  }

  async #fsync(path: string): Promise<void> {
    if (!this.#supported) return
    let handle: FileHandle | undefined
    try {
      handle = await open(path, 'r')
      await handle.sync()
    } catch (error) {
      // Windows cannot open a directory; some filesystems refuse fsync on one. Nothing to gain by retrying.
      if (!['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP', 'EBADF'].includes(errorCode(error) ?? '')) {
        throw error
      }
      this.#supported = false
    } finally {
      await handle?.close()
    }
  }
}

// Lock files.
//
// Why lock files: `create` must insert only if absent or expired, `update` must compare the version and
// write, `touch` must never move expiry backwards, and a `destroy` must never be undone by a write that read
// the record just before it. Each is a read followed by a write, so each needs mutual exclusion across
// processes, and the filesystem offers it through operations that fail when a name exists. (A
// `link()`-based insert of the record itself would cover `create` alone.)
//
// Each store writes one owner file, `<16 hex>.owner`, holding `{"pid":…,"host":…}`, and refreshes its mtime
// every LOCK_STALE_MS / 4 while it exists. A lock is a hard link from `<key>.lock` to that file: `link()`
// fails if the name exists, so taking a lock is one atomic call that leaves no partial state, and every lock
// names its holder and carries its heartbeat. A lock is stale when its holder is a process on this host
// (same hostname and PID namespace) that no longer exists, or, when that cannot be checked, when its
// heartbeat is older than LOCK_STALE_MS. (Exclusive create, then write, would leave an empty lock if the
// holder died in between, which only its age could condemn; it is the fallback where the filesystem has no
// hard links.)
//
// Release unlinks `<key>.lock` only if it is still our inode. Breaking renames the lock aside and compares
// inodes with the one judged stale (pinned by an open handle, so it cannot be reused meanwhile), never
// unlinks by name, so two processes breaking the same dead lock cannot remove a fresh lock taken in between.
// The one interleaving left needs a dead holder, two breakers and a third process acquiring within the
// same few microseconds.

/** A lock this store holds. */
interface HeldLock {
  readonly path: string
  readonly ino: bigint
  readonly dev: bigint
  /** Only for locks created with `open(path, 'wx')`, which pin their own inode. */
  readonly handle?: FileHandle | undefined
}

interface OwnerFile {
  readonly path: string
  readonly ino: bigint
  readonly dev: bigint
  readonly heartbeat: ReturnType<typeof setInterval>
}

/** The lock files of one store. */
class Locks {
  readonly #directory: string
  #owner: Promise<OwnerFile> | undefined
  /** False once the filesystem has refused a hard link (FAT, some SMB shares). */
  #hardLinks = true

  constructor(directory: string) {
    this.#directory = directory
  }

  /**
   * Takes the lock at `path`, breaking it if stale. Waits for a live holder, up to LOCK_TIMEOUT_MS, unless
   * `wait` is false, in which case it resolves undefined.
   */
  acquire(path: string, wait: true): Promise<HeldLock>
  acquire(path: string, wait: false): Promise<HeldLock | undefined>
  async acquire(path: string, wait: boolean): Promise<HeldLock | undefined> {
    const deadline = Date.now() + LOCK_TIMEOUT_MS
    for (let attempt = 0; ; attempt++) {
      const lock = this.#hardLinks ? await this.#link(path) : await createLock(path)
      if (lock !== undefined) return lock
      if ((await this.#removeOwnLeftover(path)) || (await breakIfStale(path))) continue
      if (!wait) return undefined
      if (Date.now() >= deadline) {
        throw new StoreError(`FileStore: timed out after ${LOCK_TIMEOUT_MS} ms waiting for the lock ${path}`)
      }
      // Exponential backoff with jitter, capped near the time a holder keeps a lock: one write and two fsyncs.
      await sleep(Math.min(2 ** attempt, 8) * (0.5 + Math.random()))
    }
  }

  /** Releases a lock, unless it was broken and someone else holds the name now. */
  async release(lock: HeldLock): Promise<void> {
    try {
      const current = await inodeIfPresent(lock.path)
      if (current?.ino === lock.ino && current.dev === lock.dev) await unlink(lock.path)
    } catch {
      // The operation itself succeeded; failing it now would report a committed write as failed. A lock
      // that could not be removed is broken as stale by the next writer.
    } finally {
      await lock.handle?.close().catch(() => {})
    }
  }

  /** Stops the heartbeat and removes the owner file; the next lock makes a new one. */
  async close(): Promise<void> {
    const owner = this.#owner
    this.#owner = undefined
    const file = await owner?.catch(() => undefined)
    if (file === undefined) return
    clearInterval(file.heartbeat)
    // Locks still held by calls in flight are links of their own, so they outlive this name.
    await unlinkIfPresent(file.path).catch(() => {})
  }

  /** One attempt at the lock, by hard link. Resolves undefined when the lock is taken. */
  async #link(path: string, retried = false): Promise<HeldLock | undefined> {
    const pending = this.#ownerFile()
    const owner = await pending
    try {
      await link(owner.path, path)
      return { path, ino: owner.ino, dev: owner.dev }
    } catch (error) {
      const code = errorCode(error)
      if (code === 'EEXIST') return undefined
      if (code === 'ENOENT' && !retried) {
        // Our owner file is gone: another process's sweep took this one for dead during a long stall. The
        // first call to notice makes a new one.
        if (this.#owner === pending) await this.close()
        return this.#link(path, true)
      }
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        this.#hardLinks = false
        await this.close()
        return createLock(path)
      }
      throw error
    }
  }

  /**
   * Removes a lock of ours that a failed release left behind. It can be nothing else: one call per key per
   * store holds a lock at a time, and this call does not. Without this, its holder's heartbeat would keep
   * it fresh, and so unbreakable, for as long as this process lives.
   */
  async #removeOwnLeftover(path: string): Promise<boolean> {
    const owner = await this.#owner?.catch(() => undefined)
    if (owner === undefined) return false
    const current = await inodeIfPresent(path)
    if (current?.ino !== owner.ino || current.dev !== owner.dev) return false
    await unlinkIfPresent(path)
    return true
  }

  #ownerFile(): Promise<OwnerFile> {
    this.#owner ??= (async () => {
      const path = join(this.#directory, `${randomHex(8)}.owner`)
      const handle = await open(path, 'wx', 0o600)
      let info: BigIntStats
      try {
        await handle.writeFile(await ownerTag())
        info = await handle.stat({ bigint: true })
      } finally {
        await handle.close()
      }
      const heartbeat = setInterval(() => {
        const seconds = Date.now() / 1000
        utimes(path, seconds, seconds).catch(() => {})
      }, LOCK_STALE_MS / 4)
      heartbeat.unref()
      return { path, ino: info.ino, dev: info.dev, heartbeat }
    })()
    this.#owner.catch(() => {
      this.#owner = undefined // try again on the next lock
    })
    return this.#owner
  }
}

/** One attempt at the lock, by exclusive create, for filesystems without hard links. */
async function createLock(path: string): Promise<HeldLock | undefined> {
  let handle: FileHandle
  try {
    handle = await open(path, 'wx', 0o600)
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return undefined
    throw error
  }
  try {
    await handle.writeFile(await ownerTag())
    const { ino, dev } = await handle.stat({ bigint: true })
    return { path, ino, dev, handle }
  } catch (error) {
    await handle.close().catch(() => {})
    await unlinkIfPresent(path).catch(() => {})
    throw error
  }
}

/** Removes the lock at `path` if it is stale. Resolves true when the caller should try to take it again. */
async function breakIfStale(path: string): Promise<boolean> {
  let handle: FileHandle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return true // released meanwhile
    throw error
  }
  try {
    const held = await handle.stat({ bigint: true })
    const owner = parseOwner(await handle.readFile('utf8'))
    if (!(await isStale(owner, Number(held.mtimeMs)))) return false
    const aside = `${path}.${randomHex(8)}.broken`
    try {
      await rename(path, aside)
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return true // someone else broke or released it first
      throw error
    }
    const moved = await inodeIfPresent(aside)
    if (moved !== undefined && (moved.ino !== held.ino || moved.dev !== held.dev)) {
      // We moved a fresh lock that replaced the stale one: put it back, unless yet another process has taken
      // the name since, or the filesystem has no hard links (the residual race in the note above).
      await link(aside, path).catch((error: unknown) => {
        if (
          !['EEXIST', 'ENOENT', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(errorCode(error) ?? '')
        )
          throw error
      })
    }
    await unlinkIfPresent(aside)
    return true
  } finally {
    await handle.close()
  }
}

/**
 * Removes an owner file or a `.broken` lock left by a process that died. Either is removed only when stale by
 * the lock rules (a fresh `.broken` file may be a live lock that its breaker is about to put back), or, for
 * an owner file, when it is empty and a second old: its process died between creating and writing it.
 */
async function removeLockLeftover(path: string): Promise<void> {
  let handle: FileHandle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return
    throw error
  }
  try {
    const info = await handle.stat()
    const text = await handle.readFile('utf8')
    const abandoned = text === '' && Date.now() - info.mtimeMs > 1000
    if (abandoned || (await isStale(parseOwner(text), info.mtimeMs))) await unlinkIfPresent(path)
  } finally {
    await handle.close()
  }
}

async function isStale(owner: LockOwner | undefined, mtimeMs: number): Promise<boolean> {
  if (owner !== undefined && owner.pid !== process.pid && owner.host === (await hostIdentity())) {
    if (!processExists(owner.pid)) return true
  }
  return Date.now() - mtimeMs > LOCK_STALE_MS
}

interface LockOwner {
  readonly pid: number
  readonly host: string
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const { pid, host } = JSON.parse(text) as Partial<Record<keyof LockOwner, unknown>>
    if (Number.isSafeInteger(pid) && typeof pid === 'number' && pid > 0 && typeof host === 'string') {
      return { pid, host }
    }
  } catch {
    // Empty (its holder is between create and write, or died there) or not ours: judged by age alone.
  }
  return undefined
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0) // signal 0 checks existence without signalling
    return true
  } catch (error) {
    return errorCode(error) === 'EPERM' // exists, but belongs to another user
  }
}

/** What a lock says about its holder: this process. */
async function ownerTag(): Promise<string> {
  return JSON.stringify({ pid: process.pid, host: await hostIdentity() })
}

let hostIdentityPromise: Promise<string> | undefined
/**
 * The hostname plus, on Linux, the PID namespace. Two containers sharing a volume may share a hostname; a PID
 * from one namespace means nothing in another, so without this one would break the other's live locks.
 */
function hostIdentity(): Promise<string> {
  hostIdentityPromise ??= readlink('/proc/self/ns/pid').then(
    (namespace) => `${hostname()} ${namespace}`,
    () => hostname(),
  )
  return hostIdentityPromise
}

// Records.

function serializeRecord(record: StoreRecord): string {
  const { data, expiresAt, version, userId } = record
  return JSON.stringify(
    userId === undefined ? { data, expiresAt, version } : { data, expiresAt, version, userId },
  )
}

/** The record in a file's text, or undefined when it is not one (edited by hand, truncated, foreign). */
function parseRecord(text: string): StoreRecord | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const { data, expiresAt, version, userId } = value as Partial<Record<keyof StoreRecord, unknown>>
  if (
    typeof data !== 'string' ||
    typeof expiresAt !== 'number' ||
    !Number.isFinite(expiresAt) ||
    typeof version !== 'number' ||
    !Number.isSafeInteger(version) ||
    (userId !== undefined && typeof userId !== 'string')
  ) {
    return undefined
  }
  return userId === undefined ? { data, expiresAt, version } : { data, expiresAt, version, userId }
}

/** A copy of the caller's record, refusing values JSON would silently turn into a corrupt file. */
function checkRecord(operation: string, record: StoreRecord): StoreRecord {
  const { data, expiresAt, version, userId } = record
  if (
    typeof data !== 'string' ||
    !Number.isFinite(expiresAt) ||
    !Number.isSafeInteger(version) ||
    (userId !== undefined && typeof userId !== 'string')
  ) {
    throw new StoreError(`FileStore: ${operation} failed`, {
      cause: new TypeError(
        'FileStore: a record needs string data, finite expiresAt, integer version, optional string userId',
      ),
    })
  }
  return userId === undefined ? { data, expiresAt, version } : { data, expiresAt, version, userId }
}

function live(loaded: Loaded, now: number): StoreRecord | undefined {
  return loaded !== undefined && loaded !== CORRUPT && loaded.expiresAt > now ? loaded : undefined
}

// Helpers.

/** Index directories are named by hash, so no path is ever built from a user ID. */
function userHash(userId: string): string {
  return createHash('sha256').update(userId).digest('hex')
}

function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex')
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

async function unlinkIfPresent(path: string): Promise<void> {
  try {
    await unlink(path)
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error
  }
}

async function statIfPresent(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  }
}

/** Like {@link statIfPresent}, with 64-bit inode numbers, which a plain Stats can round. */
async function inodeIfPresent(path: string): Promise<BigIntStats | undefined> {
  try {
    return await stat(path, { bigint: true })
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Runs `task` over `items`, CONCURRENCY at a time. Every item is attempted even when one fails (a sweep must
 * not stall behind one unreadable file, nor "log out everywhere" behind one session); the first error is
 * thrown at the end.
 */
async function forEach<T>(items: Iterable<T>, task: (item: T) => Promise<unknown>): Promise<void> {
  const iterator = items[Symbol.iterator]()
  const errors: unknown[] = []
  const worker = async () => {
    for (let next = iterator.next(); next.done !== true; next = iterator.next()) {
      try {
        await task(next.value)
      } catch (error) {
        errors.push(error)
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  if (errors.length > 0) throw errors[0]
}
