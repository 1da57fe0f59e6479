/**
 * A {@link Store} on Redis or Redis Cluster, using the client your application already has: an ioredis
 * `Redis` or `Cluster`, or a node-redis client or cluster (`createClient` / `createCluster`). Records expire
 * through Redis's own TTL, so no sweeper runs.
 *
 * Key layout, under a configurable prefix (`tessera:` by default):
 *
 * ```text
 * <prefix>s:<key>     string  one session: "T1|<expiresAt:16>|<indexedUntil:16>|<version>|<userId JSON>\n<data>"
 *                             PEXPIRE expiresAt - now (the manager's clock, never Redis's)
 * <prefix>u:<userId>  zset    the user's session keys, scored by indexedUntil; PEXPIRE >= its top score - now
 * ```
 *
 * Every command and script touches exactly one key, so the same code runs on a single Redis, on a
 * Redis Cluster and behind key-routing proxies, and needs no hash tags: why is explained at
 * {@link RedisStore}.
 *
 * Subpath: `tessera/redis`. Needs Redis 6.2 or later (`ZADD GT`, `ZRANGE … BYSCORE`).
 *
 * @module
 */

import { createHash } from 'node:crypto'
import { SessionConfigError, StoreError } from '../errors.js'
import type { CleanupOptions, KeyedStoreRecord, Store, StoreRecord, StoreStats } from '../store.js'

/**
 * The part of an ioredis `Redis` or `Cluster` the store uses, so ioredis's types are not needed to use it.
 * Key routing on a cluster is ioredis's own.
 */
export interface IoredisClient {
  call(command: string, ...args: string[]): Promise<unknown>
  /** A `Cluster`'s nodes; absent on a plain `Redis`. */
  nodes?(role: 'master'): IoredisClient[]
  readonly options?: { readonly keyPrefix?: string | undefined } | undefined
}

/** The part of a node-redis client (`createClient()`, connected) the store uses. */
export interface NodeRedisClient {
  sendCommand(args: readonly string[]): Promise<unknown>
}

/** The part of a node-redis cluster (`createCluster()`, connected) the store uses. */
export interface NodeRedisCluster {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>
  readonly masters: readonly unknown[]
  nodeClient(node: unknown): Promise<NodeRedisClient>
}

/** Any client {@link RedisStore} accepts; it tells them apart by shape, never by `instanceof`. */
export type RedisClient = IoredisClient | NodeRedisClient | NodeRedisCluster

/**
 * Options for `new RedisStore()`, which uses a client you created and still own.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis'
 * const store = new RedisStore({ client: new Redis(process.env.REDIS_URL!), prefix: 'myapp:sess:' })
 * ```
 */
export interface RedisStoreOptions {
  /**
   * An ioredis `Redis` or `Cluster`, or a connected node-redis client or cluster. `close()` leaves it open.
   * It must not have a `keyPrefix` of its own: give the store `prefix` instead.
   */
  client: RedisClient
  /**
   * Start of every key the store writes: 1 to 256 printable ASCII characters, no spaces. Give each store its
   * own prefix, and make sure no prefix in the database starts with another one (`cleanup()` scans
   * `<prefix>*`). A `{…}` in the prefix becomes the Redis Cluster hash tag of every key, putting them all on
   * one node.
   * @default 'tessera:'
   */
  prefix?: string | undefined
  /**
   * Keys examined per `SCAN` call in {@link RedisStore.cleanup}, and checked concurrently after each call.
   * @default 1000
   */
  cleanupBatchSize?: number | undefined
}

/**
 * Options for {@link RedisStore.open}, which creates (and on close, quits) a client itself.
 *
 * @example
 * ```ts
 * const store = await RedisStore.open({ url: 'redis://127.0.0.1:6379/0', prefix: 'myapp:sess:' })
 * ```
 */
export interface RedisStoreOpenOptions extends Omit<RedisStoreOptions, 'client'> {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://…` for TLS. */
  url: string
  /**
   * Return at once and connect in the background, retrying until Redis answers, so the app can start while
   * Redis is down (its requests get `StoreError`s until then). By default `open()` waits for the connection
   * and rejects with a `StoreError` when Redis cannot be reached.
   * @default false
   */
  lazy?: boolean
}

const PREFIX = /^[\x21-\x7e]{1,256}$/
const URL_SCHEME = /^rediss?:\/\//i
/** The largest time the 16-digit fields hold exactly, also as a Lua number and a zset score (doubles). */
const MAX_TIME = Number.MAX_SAFE_INTEGER
/** How a record begins; the `T1` tag leaves room for a new layout to be read alongside the old one. */
const RECORD = /^T1\|(\d{16})\|\d{16}\|(\d+)\|([^\n]*)\n/
/** Clients made by {@link RedisStore.open}, and how to close each: only these does `close()` touch. */
const ownedClients = new WeakMap<object, () => Promise<void>>()

/** A Lua script and its SHA-1, so it is sent in full only to a server that has not cached it yet. */
interface Script {
  readonly lua: string
  readonly sha: string
}

function script(body: string): Script {
  const lua = LUA_PRELUDE + body
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

// Helpers shared by the record scripts. Numbers cross into Lua as strings and come back out as the same
// strings: Lua 5.1 formats numbers with 14 significant digits, which would corrupt a 16-digit time.
const LUA_PRELUDE = String.raw`
local D16 = string.rep('%d', 16)
local HEAD = '^T1|(' .. D16 .. ')|(' .. D16 .. ')|(%d+)|'
local USER = '^T1|' .. D16 .. '|' .. D16 .. '|%d+|([^\n]*)\n'
-- expiresAt and indexedUntil as numbers and version as a string, or nothing for a missing key. A value
-- tessera did not write is an error rather than a miss: overwriting it could destroy someone else's data.
local function head(key)
  local h = redis.call('GETRANGE', key, 0, 63)
  if h == '' then return nil end
  local e, x, v = string.match(h, HEAD)
  if not e then error({ err = 'ERR tessera: the key holds a value RedisStore did not write' }) end
  return tonumber(e), tonumber(x), v
end
-- Writes a whole record, or deletes the key when the record is already expired (PX must be positive).
local function put(key, value, ttl)
  if tonumber(ttl) > 0 then redis.call('SET', key, value, 'PX', ttl) else redis.call('DEL', key) end
end
`

/** KEYS: record. ARGV: now, record, ttl. Insert unless a live record holds the key. */
const CREATE = script(`
local e = head(KEYS[1])
if e and e > tonumber(ARGV[1]) then return 0 end
put(KEYS[1], ARGV[2], ARGV[3])
return 1
`)

/** KEYS: record. ARGV: now, expected version, record, ttl. Compare-and-set on the live record's version. */
const UPDATE = script(`
local e, _, v = head(KEYS[1])
if not e or e <= tonumber(ARGV[1]) or v ~= ARGV[2] then return 0 end
put(KEYS[1], ARGV[3], ARGV[4])
return 1
`)

/**
 * KEYS: record. ARGV: now, expiresAt (16 digits), ttl, indexedUntil (16 digits). Moves expiry forward in
 * place (SETRANGE: the data is not rewritten). Replies 0 (no live record), 1 (done), or the userId JSON when
 * the new expiry passes what the user index is known to cover: the caller must extend the index, which
 * lives in another slot on a cluster and so cannot be reached from here.
 */
const TOUCH = script(`
local e, x = head(KEYS[1])
if not e or e <= tonumber(ARGV[1]) then return 0 end
local target = tonumber(ARGV[2])
if target <= e then return 1 end
redis.call('SETRANGE', KEYS[1], 3, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if target <= x then return 1 end
local user = string.match(redis.call('GET', KEYS[1]), USER)
if not user or user == '' then return 1 end
redis.call('SETRANGE', KEYS[1], 20, ARGV[4])
return user
`)

/**
 * KEYS: record. Marks the record as not covered by its user index (indexedUntil = 0), after a failed index
 * write, so that its next touch writes the index again. Never creates the key.
 */
const UNCOVER = script(`
local value = redis.call('GET', KEYS[1])
local user = value and string.match(value, USER)
if user and user ~= '' then redis.call('SETRANGE', KEYS[1], 20, string.rep('0', 16)) end
return 1
`)

/** KEYS: record. ARGV: userId JSON. Deletes the record only if it is bound to that user. */
const DESTROY_OWNED = script(`
local value = redis.call('GET', KEYS[1])
if not value or string.match(value, USER) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

/**
 * KEYS: user index. ARGV: session key, indexedUntil, ttl, now. Adds or raises the member (GT: scores only
 * go up, so concurrent writers agree whatever order they land in), drops members past their deadline, and
 * keeps the index alive at least as long as its longest-lived member.
 */
const INDEX = script(`
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
`)

/**
 * KEYS: any key under the prefix. ARGV: now. Deletes a record expired at `now` (1), prunes an index (0),
 * and leaves anything else alone (0): cleanup must never fail on, or delete, a key it did not write.
 */
const SWEEP = script(`
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'string' then
  local e = string.match(redis.call('GETRANGE', KEYS[1], 0, 18), '^T1|(' .. D16 .. ')')
  if e and tonumber(e) <= tonumber(ARGV[1]) then
    redis.call('DEL', KEYS[1])
    return 1
  end
elseif kind == 'zset' then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
end
return 0
`)

/**
 * KEYS: a record key. Replies `{expiresAt (16 digits), bytes of data}` for a record this store wrote, else
 * 0. The value is read on the server: only the two numbers cross the network.
 */
const MEASURE = script(`
if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 0 end
local value = redis.call('GET', KEYS[1])
local e = string.match(value, '^T1|(' .. D16 .. ')|')
local header = string.find(value, '\\n', 1, true)
if not e or not header then return 0 end
return { e, #value - header }
`)

/**
 * A {@link Store} on Redis (one server, Sentinel-managed through ioredis, or Cluster) through the user's own
 * client.
 *
 * **Records.** One string per session: with a 200-byte payload and the default prefix it takes about 380
 * bytes of Redis memory, key and TTL included, where a hash of the same fields takes about 740 (values over
 * 64 bytes switch a hash to the `hashtable` encoding, with its per-field overhead). The record holds
 * its own `expiresAt`, so a record is never returned once the manager's `now` reaches it, whatever Redis's
 * clock says, and carries a native TTL of `expiresAt - now` so Redis frees it without a sweeper.
 *
 * **Round trips.** `get` is one `GET` and `destroy` one `DEL`. `create`, `update` and `touch` are one round
 * trip each: a Lua script (`EVALSHA`, falling back to `EVAL` once per server) for the atomic check-and-write
 * on the record, sent together with the user-index script when the record is bound to a user. The exception: a `touch`
 * whose new expiry passes the point the user index is known to cover (`indexedUntil`, set to twice the
 * remaining lifetime at each index write) takes a second round trip to extend the index; a session in
 * continuous use hits it about once per idle timeout. `listByUser` takes two round trips (index, then
 * records), `destroyByUser` three.
 *
 * **Why one key per command, and no hash tags.** A script may only touch keys of one slot. `get(key)` knows
 * only the key and `listByUser(userId)` only the user, so no tagging scheme can put a session and its user's
 * index in one slot for every session. The design therefore makes the index safe to update separately:
 *
 * - The index is a *superset* of the user's live sessions: a member is added (or its score raised) by every
 *   bound create and update, and by a touch passing `indexedUntil`. Members of destroyed or rebound sessions
 *   linger until their score passes; `listByUser` reads every member's record and returns it only if it is
 *   live at `now` and still bound to that user, and `destroyByUser` deletes a record only if it is.
 * - Pruning goes by the index's own scores (`indexedUntil`, never below the member's expiry), never by
 *   reading records: a pruner reading a record while a write to it is in flight on another node cannot then
 *   remove a member that write just added. Scores only go up (`ZADD GT`), so concurrent index writes agree in
 *   any order.
 * - The index's TTL is at least its top score minus `now`, so it outlives every member it covers and then
 *   disappears with them.
 *
 * **Guarantees.** Each record operation is atomic on its own (compare-and-set, insert-if-absent, touch never
 * moves expiry backwards) on one server and on a cluster alike. The index may briefly lag a write that is
 * still in flight, and may hold stale members, but never omits a live bound session, with one exception:
 * when the index command fails while the record command succeeds (on a cluster, one node unreachable; on one
 * server, the connection dropping between the two). The call then rejects with a `StoreError`, the record is
 * marked as uncovered when that is possible, and the session's next write re-indexes it. On a single server
 * both commands travel in order on one connection (index first), so a crash between them leaves only a
 * stale member.
 *
 * **Foreign values.** A key under the prefix that holds something this store did not write (another type,
 * or a string without the `T1|` header) makes `get`, `create`, `update`, `touch` and `listByUser` reject
 * with a `StoreError` instead of being read as a miss or overwritten: it means two applications share a
 * prefix. `destroy` deletes it; `cleanup` and `destroyByUser` leave it alone.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis'
 * import { RedisStore } from 'tessera/redis'
 *
 * // Bring your own client (ioredis Redis/Cluster, node-redis client/cluster); close() leaves it open:
 * const store = new RedisStore({ client: new Redis(process.env.REDIS_URL!) })
 *
 * // Or let the store open one (ioredis, else node-redis) and quit it on close():
 * const owned = await RedisStore.open({ url: 'redis://127.0.0.1:6379' })
 * ```
 *
 * @throws {SessionConfigError} from the constructor when an option is invalid, the client is not one it
 * recognises, or the client has a `keyPrefix` of its own.
 * @throws {StoreError} from every method when Redis fails (the driver's error is the `cause`), and when a
 * time or version is not a non-negative safe integer (a `TypeError` cause).
 */
export class RedisStore implements Store {
  readonly #redis: Controller
  readonly #prefix: string
  readonly #cleanupBatchSize: number
  readonly #closeOwned: (() => Promise<void>) | undefined
  #closed = false

  /**
   * Connects to `options.url` with the first driver installed: `ioredis`, else `redis` (node-redis). The
   * store owns that client and quits it on {@link RedisStore.close}. For cluster, Sentinel or custom client
   * options, create the client yourself and pass it to the constructor.
   *
   * @example
   * ```ts
   * const store = await RedisStore.open({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' })
   * ```
   *
   * @throws {SessionConfigError} when an option is invalid or neither driver is installed.
   * @throws {StoreError} when the server cannot be reached.
   */
  static async open(options: RedisStoreOpenOptions): Promise<RedisStore> {
    const { url, lazy = false, ...rest } = options
    resolveSettings(rest) // fail on bad options before connecting
    if (typeof url !== 'string' || !URL_SCHEME.test(url)) {
      throw new SessionConfigError('RedisStore.open: url must start with redis:// or rediss://')
    }
    const connect = await loadDriver()
    const { client, close } = await connect(url, lazy)
    ownedClients.set(client, close)
    try {
      return new RedisStore({ ...rest, client })
    } catch (error) {
      await close().catch(() => undefined) // already failing with a more useful error
      throw error
    }
  }

  constructor(options: RedisStoreOptions) {
    const settings = resolveSettings(options)
    this.#redis = controllerFor(options.client)
    this.#prefix = settings.prefix
    this.#cleanupBatchSize = settings.cleanupBatchSize
    this.#closeOwned = ownedClients.get(options.client)
  }

  async get(key: string, now: number): Promise<StoreRecord | undefined> {
    return attempt('get', async () => {
      const value = text(await this.#send(this.#recordKey(key), ['GET']))
      if (value === undefined) return undefined
      const record = decode(value)
      return record.expiresAt > now ? record : undefined
    })
  }

  async create(key: string, record: StoreRecord, now: number): Promise<boolean> {
    return attempt('create', async () => {
      const write = this.#prepare(key, record, now)
      const indexed = write.index?.() // sent first: on one connection, the index never trails the record
      const created = this.#script(CREATE, write.recordKey, [String(now), write.value, write.ttl])
      // A failed index write after a successful insert leaves a record whose ID the caller never receives:
      // unreachable, so nothing needs undoing.
      const [, result] = await Promise.all([indexed, created])
      return result === 1
    })
  }

  async update(key: string, record: StoreRecord, expectedVersion: number, now: number): Promise<boolean> {
    return attempt('update', async () => {
      checkInteger('expectedVersion', expectedVersion)
      const write = this.#prepare(key, record, now)
      const args = [String(now), String(expectedVersion), write.value, write.ttl]
      const [indexed, updated] = await Promise.allSettled([
        write.index?.(),
        this.#script(UPDATE, write.recordKey, args),
      ])
      if (updated.status === 'rejected') throw updated.reason
      if (indexed.status === 'rejected') {
        if (updated.value === 1) await this.#uncover(write.recordKey)
        throw indexed.reason
      }
      return updated.value === 1
    })
  }

  async touch(key: string, expiresAt: number, now: number): Promise<boolean> {
    return attempt('touch', async () => {
      checkInteger('expiresAt', expiresAt)
      checkInteger('now', now)
      const recordKey = this.#recordKey(key)
      const indexedUntil = coverUntil(expiresAt, now)
      const args = [String(now), pad(expiresAt), String(expiresAt - now), pad(indexedUntil)]
      const reply = await this.#script(TOUCH, recordKey, args)
      const userJson = typeof reply === 'number' ? undefined : text(reply)
      if (userJson === undefined) return reply === 1
      try {
        await this.#index(parseUserId(userJson), key, indexedUntil, now)
      } catch (error) {
        await this.#uncover(recordKey)
        throw error
      }
      return true
    })
  }

  /** Deletes the record. Its user-index member stays until its score passes; readers skip it meanwhile. */
  async destroy(key: string): Promise<void> {
    await attempt('destroy', () => this.#send(this.#recordKey(key), ['DEL']))
  }

  async listByUser(userId: string, now: number): Promise<KeyedStoreRecord[]> {
    return attempt('listByUser', async () => {
      const indexKey = this.#indexKey(userId)
      const [, members] = await Promise.all([
        this.#send(indexKey, ['ZREMRANGEBYSCORE', '-inf', String(now)]),
        this.#send(indexKey, ['ZRANGE', `(${now}`, '+inf', 'BYSCORE']),
      ])
      const keys = textArray(members)
      const values = await Promise.all(keys.map((key) => this.#send(this.#recordKey(key), ['GET'])))
      const listed: KeyedStoreRecord[] = []
      keys.forEach((key, i) => {
        const value = text(values[i])
        if (value === undefined) return // destroyed or expired by Redis: its member will be pruned
        const record = decode(value)
        if (record.expiresAt > now && record.userId === userId) listed.push({ key, record })
      })
      return listed
    })
  }

  async destroyByUser(userId: string, options: { exceptKey?: string | undefined } = {}): Promise<number> {
    return attempt('destroyByUser', async () => {
      const indexKey = this.#indexKey(userId)
      const members = textArray(await this.#send(indexKey, ['ZRANGE', '0', '-1']))
      const targets = members.filter((key) => key !== options.exceptKey)
      const userJson = JSON.stringify(userId)
      const replies = await Promise.all(
        targets.map((key) => this.#script(DESTROY_OWNED, this.#recordKey(key), [userJson])),
      )
      const destroyed = targets.filter((_, i) => replies[i] === 1)
      // Only members whose record this call deleted: removing any other could race a write re-binding it.
      if (destroyed.length > 0) await this.#send(indexKey, ['ZREM', ...destroyed])
      return destroyed.length
    })
  }

  /**
   * Counts the records under the prefix with a `SCAN` on every master, `cleanupBatchSize` keys at a time (one
   * script per key measures it on the server), so memory stays bounded however many sessions there are.
   * `expired` counts records Redis has not freed yet: usually 0, since their TTL ends with them.
   */
  async stats(now: number): Promise<StoreStats> {
    return attempt('stats', async () => {
      const pattern = `${escapeGlob(this.#prefix)}s:*`
      const count = String(this.#cleanupBatchSize)
      let live = 0
      let expired = 0
      let bytes = 0
      for (const node of await this.#redis.masters()) {
        let cursor = '0'
        do {
          const [next, keys] = parseScan(await node(['SCAN', cursor, 'MATCH', pattern, 'COUNT', count]))
          const replies = await Promise.all(keys.map((key) => this.#script(MEASURE, key, [])))
          for (const reply of replies) {
            if (!Array.isArray(reply) || reply.length !== 2) continue // not a record of ours
            if (Number(text(reply[0])) > now) live++
            else expired++
            bytes += Number(reply[1])
          }
          cursor = next
        } while (cursor !== '0')
      }
      return { live, expired, bytes }
    })
  }

  /**
   * Deletes records expired at `now` that Redis has not expired yet, and prunes the user indexes. Redis's
   * TTL already frees expired records when the manager's clock and Redis's agree, so production needs no
   * schedule for this: it exists for clocks that disagree (tests, skew) and costs a `SCAN` of the prefix on
   * every master, `cleanupBatchSize` keys at a time. `onProgress` hears the running total after each batch.
   */
  async cleanup(now: number, options: CleanupOptions = {}): Promise<number> {
    return attempt('cleanup', async () => {
      const pattern = `${escapeGlob(this.#prefix)}[su]:*`
      const count = String(this.#cleanupBatchSize)
      let deleted = 0
      for (const node of await this.#redis.masters()) {
        let cursor = '0'
        do {
          const [next, keys] = parseScan(await node(['SCAN', cursor, 'MATCH', pattern, 'COUNT', count]))
          const swept = await Promise.all(keys.map((key) => this.#script(SWEEP, key, [String(now)])))
          const batch = swept.filter((result) => result === 1).length
          deleted += batch
          if (batch > 0) options.onProgress?.(deleted)
          cursor = next
        } while (cursor !== '0')
      }
      return deleted
    })
  }

  /** Quits the client if {@link RedisStore.open} created it; a client you passed in stays open. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#closeOwned !== undefined) await attempt('close', this.#closeOwned)
  }

  #recordKey(key: string): string {
    return `${this.#prefix}s:${key}`
  }

  #indexKey(userId: string): string {
    return `${this.#prefix}u:${userId}`
  }

  /** Encodes a record for writing, with the index write it needs when it is bound to a user. */
  #prepare(key: string, record: StoreRecord, now: number) {
    const { data, expiresAt, version, userId } = record
    checkInteger('expiresAt', expiresAt)
    checkInteger('version', version)
    checkInteger('now', now)
    const indexedUntil = userId === undefined ? MAX_TIME : coverUntil(expiresAt, now)
    const user = userId === undefined ? '' : JSON.stringify(userId)
    return {
      recordKey: this.#recordKey(key),
      value: `T1|${pad(expiresAt)}|${pad(indexedUntil)}|${version}|${user}\n${data}`,
      ttl: String(expiresAt - now),
      index: userId === undefined ? undefined : () => this.#index(userId, key, indexedUntil, now),
    }
  }

  #index(userId: string, key: string, indexedUntil: number, now: number): Promise<unknown> {
    const args = [key, String(indexedUntil), String(indexedUntil - now), String(now)]
    return this.#script(INDEX, this.#indexKey(userId), args)
  }

  /** Best effort: the caller is already failing with the error that made this necessary. */
  async #uncover(recordKey: string): Promise<void> {
    await this.#script(UNCOVER, recordKey, []).catch(() => undefined)
  }

  /** Sends `command key ...args`, routed by `key` on a cluster. */
  #send(key: string, [command, ...args]: readonly string[]): Promise<unknown> {
    return this.#redis.send(key, [command!, key, ...args])
  }

  /**
   * Runs a one-key script by SHA; a server that has not cached it (new, restarted, failed over, or flushed)
   * replies NOSCRIPT, and gets the full text once, which also caches it there.
   */
  async #script(script: Script, key: string, args: readonly string[]): Promise<unknown> {
    try {
      return await this.#redis.send(key, ['EVALSHA', script.sha, '1', key, ...args])
    } catch (error) {
      if (!isRedisError(error, 'NOSCRIPT')) throw error
      return this.#redis.send(key, ['EVAL', script.lua, '1', key, ...args])
    }
  }
}

/**
 * What the store needs from a client, whichever driver it comes from (connect-redis's pattern): the rest of
 * the store never sees a driver.
 */
interface Controller {
  /** Sends one command; on a cluster, `key` picks the node (ioredis finds it in the arguments itself). */
  send(key: string, args: readonly string[]): Promise<unknown>
  /** A sender for each master: the server itself, or every master of a cluster (SCAN is per node). */
  masters(): Promise<Array<(args: readonly string[]) => Promise<unknown>>>
}

function controllerFor(client: RedisClient): Controller {
  const shape = client as Partial<IoredisClient & NodeRedisClient & NodeRedisCluster> | null
  if (shape === null || typeof shape !== 'object') throw notAClient()
  const keyPrefix = shape.options?.keyPrefix ?? (shape as { _keyPrefix?: unknown })._keyPrefix
  if (keyPrefix !== undefined && keyPrefix !== null && String(keyPrefix) !== '') {
    throw new SessionConfigError(
      `RedisStore: the client has keyPrefix ${JSON.stringify(String(keyPrefix))}; create it without one and give the store \`prefix\` instead (SCAN, used by cleanup, ignores keyPrefix)`,
    )
  }
  if (typeof (shape as { getMasterNode?: unknown }).getMasterNode === 'function') {
    throw new SessionConfigError(
      'RedisStore: a node-redis Sentinel client is not supported; use an ioredis Redis created with `sentinels`',
    )
  }
  if (typeof shape.call === 'function') {
    const io = client as IoredisClient
    const sender = (redis: IoredisClient) => (args: readonly string[]) =>
      redis.call(args[0]!, ...args.slice(1))
    return {
      send: (_key, args) => sender(io)(args),
      masters: async () => (typeof io.nodes === 'function' ? io.nodes('master') : [io]).map(sender),
    }
  }
  if (typeof shape.sendCommand === 'function' && Array.isArray(shape.masters)) {
    const cluster = client as NodeRedisCluster
    return {
      send: (key, args) => cluster.sendCommand(key, false, [...args]),
      masters: async () => {
        const nodes = await Promise.all(cluster.masters.map((master) => cluster.nodeClient(master)))
        return nodes.map((node) => (args: readonly string[]) => node.sendCommand(args))
      },
    }
  }
  if (typeof shape.sendCommand === 'function') {
    const single = client as NodeRedisClient
    const send = (args: readonly string[]) => single.sendCommand(args)
    return { send: (_key, args) => send(args), masters: async () => [send] }
  }
  throw notAClient()
}

function notAClient(): SessionConfigError {
  return new SessionConfigError(
    'RedisStore: client must be an ioredis Redis or Cluster, or a node-redis client or cluster (createClient / createCluster)',
  )
}

interface Settings {
  readonly prefix: string
  readonly cleanupBatchSize: number
}

function resolveSettings(options: Omit<RedisStoreOptions, 'client'>): Settings {
  const { prefix = 'tessera:', cleanupBatchSize = 1000 } = options
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) {
    throw new SessionConfigError(
      `RedisStore: prefix must be 1 to 256 printable ASCII characters without spaces, got ${JSON.stringify(prefix)}`,
    )
  }
  if (!Number.isSafeInteger(cleanupBatchSize) || cleanupBatchSize < 1 || cleanupBatchSize > 100_000) {
    throw new SessionConfigError(
      `RedisStore: cleanupBatchSize must be an integer from 1 to 100000, got ${cleanupBatchSize}`,
    )
  }
  return { prefix, cleanupBatchSize }
}

/** Runs a store operation, turning whatever it throws into a {@link StoreError} with the original as `cause`. */
async function attempt<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw new StoreError(`RedisStore: ${operation} failed`, { cause: error })
  }
}

/** The times and versions the record header holds as exact decimal integers. */
function checkInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`RedisStore: ${name} must be a non-negative safe integer, got ${value}`)
  }
}

/**
 * How long a bound record's user index must live: twice the record's remaining lifetime, so a session in
 * steady use extends its index about once per idle timeout rather than on every touch.
 */
function coverUntil(expiresAt: number, now: number): number {
  return Math.min(MAX_TIME, Math.max(expiresAt, 2 * expiresAt - now))
}

function pad(time: number): string {
  return String(time).padStart(16, '0')
}

function decode(value: string): StoreRecord {
  const match = RECORD.exec(value)
  if (match === null) throw new Error('the key holds a value RedisStore did not write')
  const [header, expiresAt, version, user] = match as unknown as [string, string, string, string]
  const record = { data: value.slice(header.length), expiresAt: Number(expiresAt), version: Number(version) }
  return user === '' ? record : { ...record, userId: parseUserId(user) }
}

function parseUserId(json: string): string {
  const userId: unknown = JSON.parse(json)
  if (typeof userId !== 'string') throw new Error('the key holds a value RedisStore did not write')
  return userId
}

/** A bulk-string reply as text: drivers reply with strings, or Buffers under a custom type mapping. */
function text(reply: unknown): string | undefined {
  if (reply === null || reply === undefined) return undefined
  if (typeof reply === 'string') return reply
  if (reply instanceof Uint8Array) return Buffer.from(reply).toString('utf8')
  throw new Error(`unexpected reply from Redis: ${typeof reply}`)
}

function textArray(reply: unknown): string[] {
  if (!Array.isArray(reply)) throw new Error('unexpected reply from Redis: expected an array')
  return reply.map((item) => text(item) ?? '')
}

function parseScan(reply: unknown): [string, string[]] {
  if (!Array.isArray(reply) || reply.length !== 2) throw new Error('unexpected SCAN reply from Redis')
  return [text(reply[0]) ?? '0', textArray(reply[1])]
}

/** SCAN MATCH treats `* ? [ ] \` as pattern syntax; a prefix containing them must match only itself. */
function escapeGlob(literal: string): string {
  return literal.replace(/[*?[\]\\]/g, '\\$&')
}

/**
 * Redis error replies start with an upper-case code (`NOSCRIPT`, `WRONGTYPE`): the protocol's stable part,
 * unlike the prose after it. Both drivers put the reply in `message` unchanged.
 */
function isRedisError(error: unknown, code: string): boolean {
  return error instanceof Error && error.message.startsWith(`${code} `)
}

type Connect = (url: string, lazy: boolean) => Promise<{ client: RedisClient; close: () => Promise<void> }>

/**
 * Finds a driver without importing one statically, so both stay optional peer dependencies and apps that
 * bring their own client never load the other.
 */
async function loadDriver(): Promise<Connect> {
  let missing: unknown
  try {
    const { Redis } = await import('ioredis')
    return async (url, lazy) => {
      const client = new Redis(url, {
        lazyConnect: true,
        // While disconnected, fail commands at once (a fast 503) rather than queue them: a queued write from a
        // request that already got its 503 would otherwise land minutes later, when Redis is back.
        enableOfflineQueue: false,
        // Retry quickly and often: a restarted Redis is served within a second, not after a 5 s back-off.
        retryStrategy: (attempt) => Math.min(attempt * 50, 1000),
      })
      // Failures reach callers as StoreErrors; without a listener ioredis would also log each reconnect attempt.
      let failure: unknown
      client.on('error', (error: unknown) => {
        failure = error
      })
      // ioredis keeps retrying a refused first connection by itself (its retryStrategy).
      if (lazy) client.connect().catch(() => undefined)
      else
        try {
          await client.connect()
        } catch (error) {
          client.disconnect()
          throw new StoreError(`RedisStore: cannot connect to ${redact(url)}`, { cause: failure ?? error })
        }
      const close = async () => {
        // quit() waits for pending replies but would queue behind a reconnect that may never succeed.
        if (client.status === 'ready') await client.quit()
        else client.disconnect()
      }
      return { client, close }
    }
  } catch (error) {
    if (!isModuleNotFound(error)) {
      throw new SessionConfigError('RedisStore: ioredis is installed but failed to load', { cause: error })
    }
    missing = error
  }
  try {
    const { createClient } = await import('redis')
    return async (url, lazy) => {
      let connected = lazy
      const client = createClient({
        url,
        // node-redis retries a refused first connection forever; fail open() instead, retry after that.
        socket: { reconnectStrategy: (retries, cause) => (connected ? Math.min(retries * 50, 1000) : cause) },
        // As with ioredis: fail commands at once while disconnected, never replay them later.
        disableOfflineQueue: true,
      })
      // node-redis throws an 'error' event that has no listener; failures reach callers as StoreErrors.
      client.on('error', () => undefined)
      if (lazy) client.connect().catch(() => undefined)
      else
        try {
          await client.connect()
          connected = true
        } catch (error) {
          client.destroy()
          throw new StoreError(`RedisStore: cannot connect to ${redact(url)}`, { cause: error })
        }
      const close = async () => {
        if (client.isReady) await client.close()
        else if (client.isOpen) client.destroy()
      }
      return { client, close }
    }
  } catch (error) {
    if (!isModuleNotFound(error)) {
      throw new SessionConfigError('RedisStore: redis (node-redis) is installed but failed to load', {
        cause: error,
      })
    }
    throw new SessionConfigError(
      'RedisStore.open needs a Redis driver: run `npm install ioredis` (or `npm install redis`)',
      { cause: missing },
    )
  }
}

/** A URL for error messages, without the password it may carry. */
function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@')
}

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND'
}
