/**
 * The {@link Store} contract as a runnable `node:test` suite. Every store that ships with tessera runs it,
 * and so can yours: a store that passes it works with the session manager.
 *
 * Subpath: `tessera/testing`.
 *
 * @example
 * ```ts
 * // redis-store.test.ts, run with `node --test`
 * import { randomUUID } from 'node:crypto'
 * import { runStoreContract } from 'tessera/testing'
 *
 * runStoreContract({
 *   name: 'RedisStore',
 *   create: () => new RedisStore({ client: new Redis(process.env.REDIS_URL), prefix: `test:${randomUUID()}:` }),
 *   skip: process.env.REDIS_URL ? undefined : 'REDIS_URL is not set',
 * })
 * ```
 *
 * @module
 */

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it, type TestContext } from 'node:test'
import { StoreError } from '../errors.js'
import type { Store, StoreRecord } from '../store.js'

/**
 * Options for {@link runStoreContract}.
 *
 * @example
 * ```ts
 * runStoreContract({ name: 'MemoryStore', create: () => new MemoryStore({ cleanupIntervalMs: 0 }) })
 * ```
 */
export interface StoreContractOptions {
  /** Suite name shown in the test report, usually the class name. */
  name: string
  /**
   * Returns a new, empty store. **Every call must get its own namespace** (table, key prefix, database
   * or file): cases run one after another against fresh stores, and one case checks that two stores from
   * two calls cannot see each other's records. The suite closes every store it creates.
   */
  create: () => Store | Promise<Store>
  /** When set, the whole suite is reported as skipped with this reason (e.g. `'REDIS_URL is not set'`). */
  skip?: string | undefined
}

/**
 * Registers the contract cases under `describe('Store contract: <name>')`.
 *
 * Time never comes from the wall clock: every case passes `now` explicitly, starting from
 * `1_700_000_000_000` (November 2023). A store that also sets a native TTL as a backstop must derive it
 * from `expiresAt - now`, not from its own clock, or it will drop records the contract expects to find.
 *
 * @example
 * ```ts
 * import { runStoreContract } from 'tessera/testing'
 *
 * runStoreContract({ name: 'FileStore', create: () => new FileStore({ dir: mkdtempSync(join(tmpdir(), 's-')) }) })
 * ```
 */
export function runStoreContract(options: StoreContractOptions): void {
  const { name, create, skip } = options

  /** Registers a case that runs against a new store and always closes it. */
  const itWithStore = (title: string, test: (store: Store, t: TestContext) => Promise<void>) =>
    it(title, async (t) => {
      const store = await create()
      try {
        await test(store, t)
      } finally {
        await store.close()
      }
    })

  describe(`Store contract: ${name}`, skip === undefined ? {} : { skip }, () => {
    describe('get', () => {
      itWithStore('resolves undefined for a key that was never written', async (store) => {
        assert.equal(await store.get(newKey(), T), undefined)
      })

      itWithStore('round-trips data byte for byte: unicode, escapes and a 60 kB payload', async (store) => {
        for (const data of SAMPLE_DATA) {
          const key = newKey()
          assert.equal(await store.create(key, record(data, { userId: 'u' }), T), true)
          assert.equal((await store.get(key, T))?.data, data)
        }
        const listed = await store.listByUser('u', T)
        assert.deepEqual(listed.map((entry) => entry.record.data).sort(), [...SAMPLE_DATA].sort())
      })

      itWithStore(
        'round-trips expiresAt, version and userId; an anonymous record has no userId',
        async (store) => {
          const [bound, anonymous] = newKeys()
          await store.create(bound, record('{"a":1}', { expiresAt: T + 12_345, userId: 'user-1' }), T)
          await store.create(anonymous, record('{"b":2}', { expiresAt: T + 54_321 }), T)
          assertRecord(await store.get(bound, T), {
            data: '{"a":1}',
            expiresAt: T + 12_345,
            version: 1,
            userId: 'user-1',
          })
          assertRecord(await store.get(anonymous, T), { data: '{"b":2}', expiresAt: T + 54_321, version: 1 })
        },
      )

      itWithStore('keeps no reference to the record object it was given', async (store) => {
        const key = newKey()
        const input = { data: '{"cart":[]}', expiresAt: T + HOUR, version: 1, userId: 'u' }
        await store.create(key, input, T)
        input.data = '{"cart":["mutated"]}'
        input.userId = 'someone-else'
        assertRecord(await store.get(key, T), {
          data: '{"cart":[]}',
          expiresAt: T + HOUR,
          version: 1,
          userId: 'u',
        })
        assert.deepEqual(await store.listByUser('someone-else', T), [])
      })
    })

    describe('expiry', () => {
      itWithStore('never returns a record once now reaches expiresAt', async (store) => {
        const key = newKey()
        await store.create(key, record('{}', { expiresAt: T + 1000, userId: 'u' }), T)
        assert.notEqual(await store.get(key, T + 999), undefined)
        assert.equal((await store.listByUser('u', T + 999)).length, 1)
        assert.equal(await store.get(key, T + 1000), undefined)
        assert.deepEqual(await store.listByUser('u', T + 1000), [])
        assert.equal(await store.get(key, T + YEAR), undefined)
      })

      itWithStore(
        'touch and update on an expired record resolve false and do not revive it',
        async (store) => {
          const key = newKey()
          await store.create(key, record('{"v":1}', { expiresAt: T + 1000, userId: 'u' }), T)
          assert.equal(await store.touch(key, T + HOUR, T + 1000), false)
          assert.equal(
            await store.update(key, record('{"v":2}', { version: 2, userId: 'u' }), 1, T + 1000),
            false,
          )
          assert.equal(await store.get(key, T + 1000), undefined)
          assert.deepEqual(await store.listByUser('u', T + 1000), [])
        },
      )
    })

    describe('create', () => {
      itWithStore('resolves false and writes nothing when a live record holds the key', async (store) => {
        const key = newKey()
        assert.equal(await store.create(key, record('{"first":true}', { userId: 'a' }), T), true)
        const second = record('{"second":true}', { expiresAt: T + 2 * HOUR, userId: 'b' })
        assert.equal(await store.create(key, second, T + 1), false)
        assertRecord(await store.get(key, T + 1), {
          data: '{"first":true}',
          expiresAt: T + HOUR,
          version: 1,
          userId: 'a',
        })
        assert.deepEqual(await store.listByUser('b', T + 1), [])
        assert.deepEqual(keysOf(await store.listByUser('a', T + 1)), [key])
      })

      itWithStore('may replace an expired record, and never revives the old one', async (store) => {
        const key = newKey()
        await store.create(key, record('{"old":true}', { expiresAt: T + 1000, userId: 'a' }), T)
        const fresh = record('{"new":true}', { expiresAt: T + HOUR, userId: 'b' })
        const replaced = await store.create(key, fresh, T + 1000)
        assert.deepEqual(await store.listByUser('a', T + 1000), [])
        if (replaced) {
          assertRecord(await store.get(key, T + 1000), fresh)
          assert.deepEqual(keysOf(await store.listByUser('b', T + 1000)), [key])
        } else {
          assert.equal(await store.get(key, T + 1000), undefined)
        }
      })

      itWithStore('lets exactly one of 20 concurrent creates of one key win', async (store) => {
        const key = newKey()
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) => store.create(key, record(`{"writer":${i}}`), T)),
        )
        const winner = results.indexOf(true)
        assert.equal(results.filter(Boolean).length, 1)
        assert.equal((await store.get(key, T))?.data, `{"writer":${winner}}`)
      })
    })

    describe('update (compare-and-set)', () => {
      itWithStore('applies the record when expectedVersion is the live version', async (store) => {
        const key = newKey()
        await store.create(key, record('{"n":1}', { userId: 'u' }), T)
        const v2 = record('{"n":2}', { version: 2, expiresAt: T + 2 * HOUR, userId: 'u' })
        assert.equal(await store.update(key, v2, 1, T + 1), true)
        assertRecord(await store.get(key, T + 1), v2)
        const v3 = record('{"n":3}', { version: 3, expiresAt: T + 3 * HOUR, userId: 'u' })
        assert.equal(await store.update(key, v3, 2, T + 2), true)
        assertRecord(await store.get(key, T + 2), v3)
      })

      itWithStore('resolves false and changes nothing on a stale or unknown version', async (store) => {
        const key = newKey()
        await store.create(key, record('{"n":1}'), T)
        const v2 = record('{"n":2}', { version: 2 })
        assert.equal(await store.update(key, v2, 1, T), true)
        assert.equal(await store.update(key, record('{"stale":true}', { version: 2 }), 1, T), false)
        assert.equal(await store.update(key, record('{"future":true}', { version: 6 }), 5, T), false)
        assertRecord(await store.get(key, T), v2)
      })

      itWithStore('never creates a record for a missing key', async (store) => {
        const key = newKey()
        assert.equal(await store.update(key, record('{}', { version: 2, userId: 'u' }), 1, T), false)
        assert.equal(await store.get(key, T), undefined)
        assert.deepEqual(await store.listByUser('u', T), [])
      })

      itWithStore('never resurrects a destroyed record', async (store) => {
        const key = newKey()
        await store.create(key, record('{}', { userId: 'u' }), T)
        await store.destroy(key)
        assert.equal(
          await store.update(key, record('{"late":true}', { version: 2, userId: 'u' }), 1, T),
          false,
        )
        assert.equal(await store.get(key, T), undefined)
        assert.deepEqual(await store.listByUser('u', T), [])
      })

      itWithStore(
        'lets exactly one of 20 concurrent updates with the same expectedVersion win',
        async (store) => {
          const key = newKey()
          await store.create(key, record('{"n":1}'), T)
          const results = await Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              store.update(key, record(`{"writer":${i}}`, { version: 2 }), 1, T),
            ),
          )
          const winner = results.indexOf(true)
          assert.equal(results.filter(Boolean).length, 1)
          assertRecord(await store.get(key, T), record(`{"writer":${winner}}`, { version: 2 }))
        },
      )
    })

    describe('touch', () => {
      itWithStore('moves expiry forward and keeps data, version and userId', async (store) => {
        const key = newKey()
        await store.create(key, record('{"n":1}', { userId: 'u' }), T)
        await store.update(key, record('{"n":2}', { version: 2, userId: 'u' }), 1, T)
        assert.equal(await store.touch(key, T + 5 * HOUR, T + 1), true)
        const expected = { data: '{"n":2}', expiresAt: T + 5 * HOUR, version: 2, userId: 'u' }
        assertRecord(await store.get(key, T + 2 * HOUR), expected)
        assertRecord((await store.listByUser('u', T + 2 * HOUR))[0]?.record, expected)
      })

      itWithStore('never moves expiry backwards, yet resolves true for the live record', async (store) => {
        const key = newKey()
        await store.create(key, record('{}', { expiresAt: T + 5 * HOUR }), T)
        assert.equal(await store.touch(key, T + HOUR, T + 1), true)
        assert.equal((await store.get(key, T + 2 * HOUR))?.expiresAt, T + 5 * HOUR)
      })

      itWithStore('resolves false and creates nothing for a missing key', async (store) => {
        const key = newKey()
        assert.equal(await store.touch(key, T + HOUR, T), false)
        assert.equal(await store.get(key, T), undefined)
      })
    })

    describe('destroy', () => {
      itWithStore('deletes the record and is idempotent', async (store) => {
        const [key, other] = newKeys()
        await store.destroy(key) // never written
        await store.create(key, record('{}'), T)
        await store.create(other, record('{"keep":true}'), T)
        await store.destroy(key)
        await store.destroy(key)
        assert.equal(await store.get(key, T), undefined)
        assert.equal((await store.get(other, T))?.data, '{"keep":true}')
      })
    })

    describe('per-user index', () => {
      itWithStore('listByUser returns exactly the live records of that user', async (store) => {
        const [a1, a2, aExpired, b1, anonymous] = newKeys()
        await store.create(a1, record('{"a":1}', { userId: 'a' }), T)
        await store.create(a2, record('{"a":2}', { userId: 'a', expiresAt: T + 2 * HOUR }), T)
        await store.create(aExpired, record('{"a":3}', { userId: 'a', expiresAt: T + 10 }), T)
        await store.create(b1, record('{"b":1}', { userId: 'b' }), T)
        await store.create(anonymous, record('{}'), T)
        const listed = await store.listByUser('a', T + 10)
        assert.deepEqual(keysOf(listed), [a1, a2].sort())
        const byKey = new Map(listed.map((entry) => [entry.key, entry.record]))
        assertRecord(byKey.get(a2), record('{"a":2}', { userId: 'a', expiresAt: T + 2 * HOUR }))
        assert.deepEqual(await store.listByUser('nobody', T), [])
      })

      itWithStore('follows userId changes made by update', async (store) => {
        const key = newKey()
        await store.create(key, record('{}'), T)
        assert.equal(
          await store.update(key, record('{"login":true}', { version: 2, userId: 'a' }), 1, T),
          true,
        )
        assert.deepEqual(keysOf(await store.listByUser('a', T)), [key])
        assert.equal(
          await store.update(key, record('{"switch":true}', { version: 3, userId: 'b' }), 2, T),
          true,
        )
        assert.deepEqual(await store.listByUser('a', T), [])
        assert.deepEqual(keysOf(await store.listByUser('b', T)), [key])
        assert.equal(await store.update(key, record('{"logout":true}', { version: 4 }), 3, T), true)
        assert.deepEqual(await store.listByUser('b', T), [])
      })

      itWithStore('destroy removes the record from its user list', async (store) => {
        const [kept, destroyed] = newKeys()
        await store.create(kept, record('{}', { userId: 'u' }), T)
        await store.create(destroyed, record('{}', { userId: 'u' }), T)
        await store.destroy(destroyed)
        assert.deepEqual(keysOf(await store.listByUser('u', T)), [kept])
      })

      itWithStore(
        'destroyByUser deletes the other records of that user and resolves the count',
        async (store) => {
          const [current, other1, other2, someoneElse, anonymous] = newKeys()
          for (const key of [current, other1, other2]) {
            await store.create(key, record('{}', { userId: 'u' }), T)
          }
          await store.create(someoneElse, record('{}', { userId: 'v' }), T)
          await store.create(anonymous, record('{}'), T)
          assert.equal(await store.destroyByUser('u', { exceptKey: current }), 2)
          assert.deepEqual(keysOf(await store.listByUser('u', T)), [current])
          assert.equal(await store.get(other1, T), undefined)
          assert.equal(await store.get(other2, T), undefined)
          assert.notEqual(await store.get(someoneElse, T), undefined)
          assert.notEqual(await store.get(anonymous, T), undefined)
        },
      )

      itWithStore('destroyByUser without exceptKey deletes every record of that user', async (store) => {
        const keys = [newKey(), newKey(), newKey()]
        for (const key of keys) await store.create(key, record('{}', { userId: 'u' }), T)
        assert.equal(await store.destroyByUser('u'), 3)
        assert.deepEqual(await store.listByUser('u', T), [])
        for (const key of keys) assert.equal(await store.get(key, T), undefined)
        assert.equal(await store.destroyByUser('u'), 0)
        assert.equal(await store.destroyByUser('nobody', { exceptKey: keys[0] }), 0)
      })
    })

    describe('cleanup', () => {
      itWithStore('deletes the expired records, resolves their count and leaves live ones', async (store) => {
        const [expired1, expired2, expired3, live1, live2] = newKeys()
        const [expired, live] = [
          [expired1, expired2, expired3],
          [live1, live2],
        ]
        await store.create(expired1, record('{}', { expiresAt: T + 1000 }), T)
        await store.create(expired2, record('{}', { expiresAt: T + 2000, userId: 'u' }), T)
        await store.create(expired3, record('{}', { expiresAt: T + 3000 }), T) // expiresAt == now counts
        for (const key of live) await store.create(key, record('{"live":true}', { userId: 'u' }), T)
        assert.equal(await store.cleanup(T + 3000), 3)
        for (const key of live) assert.equal((await store.get(key, T + 3000))?.data, '{"live":true}')
        assert.deepEqual(keysOf(await store.listByUser('u', T + 3000)), [...live].sort())
        // Asking with an earlier `now` proves the rows are gone, not merely hidden.
        for (const key of expired) assert.equal(await store.get(key, T), undefined)
        assert.equal(await store.cleanup(T + 3000), 0)
      })

      itWithStore('goes by the current expiry after touch and update', async (store) => {
        const [touched, extended, shortened] = newKeys()
        await store.create(touched, record('{}', { expiresAt: T + 1000 }), T)
        await store.create(extended, record('{}', { expiresAt: T + 1000 }), T)
        await store.create(shortened, record('{}', { expiresAt: T + HOUR }), T)
        await store.touch(touched, T + HOUR, T)
        await store.update(extended, record('{"n":2}', { version: 2, expiresAt: T + HOUR }), 1, T)
        await store.update(shortened, record('{"n":2}', { version: 2, expiresAt: T + 1000 }), 1, T)
        assert.equal(await store.cleanup(T + 1000), 1)
        assert.notEqual(await store.get(touched, T + 1000), undefined)
        assert.notEqual(await store.get(extended, T + 1000), undefined)
        assert.equal(await store.get(shortened, T), undefined)
      })

      itWithStore(
        'reports progress, if at all, as a running total that ends at the count it resolves',
        async (store) => {
          for (let i = 0; i < 5; i++) await store.create(newKey(), record('{}', { expiresAt: T + 1000 }), T)
          await store.create(newKey(), record('{"live":true}'), T)
          const reported: number[] = []
          assert.equal(await store.cleanup(T + 1000, { onProgress: (n) => reported.push(n) }), 5)
          // Optional: a store that sweeps in one step may never call it.
          if (reported.length > 0) {
            assert.deepEqual(
              reported,
              [...reported].sort((a, b) => a - b),
              'the total never goes down',
            )
            assert.ok(reported[0]! > 0, 'no report before something was deleted')
            assert.equal(reported.at(-1), 5)
          }
        },
      )

      itWithStore('resolves 0 on an empty store and copes with a clock jump of a century', async (store) => {
        assert.equal(await store.cleanup(T), 0)
        for (let i = 0; i < 5; i++)
          await store.create(newKey(), record('{}', { expiresAt: T + (i + 1) * YEAR }), T)
        assert.equal(await store.cleanup(T + 100 * YEAR), 5)
      })
    })

    describe('stats (optional)', () => {
      itWithStore(
        'counts live and expired records and the UTF-8 bytes of their data, exactly',
        async (store, t) => {
          if (typeof store.stats !== 'function') return t.skip('the store has no stats()')
          const stats = async (now: number) => {
            const { live, expired, bytes } = await store.stats!(now)
            return { live, expired, bytes }
          }
          assert.deepEqual(await stats(T), { live: 0, expired: 0, bytes: 0 })
          const now = T + 2 * HOUR
          const [live1, live2, live3, touched, boundary] = newKeys()
          const [expired1, shortened] = newKeys()
          const multibyte = '{"text":"héllo ✓ 日本語 👩🏽‍💻"}'
          const big = SAMPLE_DATA[SAMPLE_DATA.length - 1]!
          await store.create(live1, record('{"a":1}', { expiresAt: T + 3 * HOUR }), T)
          await store.create(live2, record(multibyte, { expiresAt: T + 3 * HOUR, userId: 'u' }), T)
          await store.create(live3, record(big, { expiresAt: T + 3 * HOUR }), T)
          await store.create(touched, record('{"t":1}', { expiresAt: T + HOUR }), T)
          await store.touch(touched, T + 3 * HOUR, T)
          // Expired, but held until cleanup: native TTLs follow `expiresAt - now`, so none has run out yet.
          await store.create(boundary, record('{"b":"ü"}', { expiresAt: now, userId: 'u' }), T) // == now
          await store.create(expired1, record('{}', { expiresAt: T + HOUR }), T)
          await store.create(shortened, record('{"v":1}', { expiresAt: T + 3 * HOUR }), T)
          await store.update(shortened, record('{"v":"two"}', { version: 2, expiresAt: T + HOUR }), 1, T)
          const utf8 = (data: string) => Buffer.byteLength(data, 'utf8')
          const liveBytes = utf8('{"a":1}') + utf8(multibyte) + utf8(big) + utf8('{"t":1}')
          const expiredBytes = utf8('{"b":"ü"}') + utf8('{}') + utf8('{"v":"two"}')
          assert.deepEqual(await stats(T), { live: 7, expired: 0, bytes: liveBytes + expiredBytes })
          assert.deepEqual(await stats(now), { live: 4, expired: 3, bytes: liveBytes + expiredBytes })
          assert.equal(await store.cleanup(now), 3)
          assert.deepEqual(await stats(now), { live: 4, expired: 0, bytes: liveBytes })
          await store.destroy(live3)
          assert.deepEqual(await stats(now), { live: 3, expired: 0, bytes: liveBytes - utf8(big) })
        },
      )
    })

    describe('lifecycle', () => {
      it('isolates stores returned by separate create() calls', async () => {
        const first = await create()
        const second = await create()
        try {
          const [key, expiring] = newKeys()
          await first.create(key, record('{"store":1}', { userId: 'u' }), T)
          await first.create(expiring, record('{}', { expiresAt: T + 1000 }), T)
          // A shared namespace would refuse these: the keys are already live in `first`.
          assert.equal(await second.create(key, record('{"store":2}', { userId: 'u' }), T), true)
          assert.equal(await second.create(expiring, record('{"live":true}'), T), true)
          assert.equal((await second.get(key, T))?.data, '{"store":2}')
          assert.equal(await first.cleanup(T + 1000), 1)
          assert.equal(await first.destroyByUser('u'), 1)
          assert.equal((await second.get(expiring, T + 1000))?.data, '{"live":true}')
          assert.deepEqual(keysOf(await second.listByUser('u', T + 1000)), [key])
          await second.destroy(key)
          assert.equal(await first.get(key, T), undefined)
        } finally {
          await first.close()
          await second.close()
        }
      })

      it('close() can be called twice', async () => {
        const store = await create()
        await store.close()
        await store.close()
      })
    })
  })
}

const T = 1_700_000_000_000
const HOUR = 3_600_000
const YEAR = 365 * 24 * HOUR

/** Keys look like the manager's: SHA-256 hex. Random, so leftovers in a shared backend cannot collide. */
function newKey(): string {
  return randomBytes(32).toString('hex')
}

/** Five fresh keys, to destructure as many as a case needs. */
function newKeys(): [string, string, string, string, string] {
  return [newKey(), newKey(), newKey(), newKey(), newKey()]
}

function record(
  data: string,
  options: { expiresAt?: number; version?: number; userId?: string } = {},
): StoreRecord {
  const { expiresAt = T + HOUR, version = 1, userId } = options
  return { data, expiresAt, version, userId }
}

/** Compares field by field, so a store may either omit `userId` or set it to undefined. */
function assertRecord(actual: StoreRecord | undefined, expected: StoreRecord): void {
  assert.notEqual(actual, undefined, 'expected a record, got undefined')
  const { data, expiresAt, version, userId } = actual!
  assert.deepEqual(
    { data, expiresAt, version, userId },
    {
      data: expected.data,
      expiresAt: expected.expiresAt,
      version: expected.version,
      userId: expected.userId,
    },
  )
}

function keysOf(entries: readonly { key: string }[]): string[] {
  return entries.map((entry) => entry.key).sort()
}

/** Payloads a store might mangle: multi-byte text, escapes, SQL and JSON metacharacters, size. */
const SAMPLE_DATA: readonly string[] = [
  '{"user":"ada","roles":["admin"]}',
  ' {"spaced" : true}\n',
  '{"text":"héllo wörld ✓ 日本語 עברית 👩🏽‍💻 e\u0301"}',
  JSON.stringify({ quote: '"', backslash: '\\', both: '\\"', newline: '\n', tab: '\t', nul: '\u0000' }),
  `{"sql":"'; DROP TABLE sessions; --","like":"%_"}`,
  JSON.stringify({ blob: 'ωx🙂\\"'.repeat(6_000) }),
]

/**
 * Asserts that every method of `store` rejects with a `StoreError` carrying the driver's error as `cause`:
 * call it after breaking the backend (closing the user's database, ending their pool, quitting their client).
 *
 * @example
 * await pool.end()
 * await assertEveryCallFailsWithStoreError(store)
 */
export async function assertEveryCallFailsWithStoreError(
  store: Store,
  now = 1_700_000_000_000,
): Promise<void> {
  const key = () => randomBytes(32).toString('hex')
  const record = (version = 1): StoreRecord => ({
    data: '{}',
    expiresAt: now + 3_600_000,
    version,
    userId: 'u',
  })
  const calls: [string, () => Promise<unknown>][] = [
    ['get', () => store.get(key(), now)],
    ['create', () => store.create(key(), record(), now)],
    ['update', () => store.update(key(), record(2), 1, now)],
    ['touch', () => store.touch(key(), now + 3_600_000, now)],
    ['destroy', () => store.destroy(key())],
    ['listByUser', () => store.listByUser('u', now)],
    ['destroyByUser', () => store.destroyByUser('u')],
    ['cleanup', () => store.cleanup(now)],
  ]
  for (const [name, call] of calls) {
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof StoreError, `${name} rejected with ${String(error)}`)
      assert.equal(error.code, 'ERR_SESSION_STORE')
      assert.ok(error.cause instanceof Error, `${name} has no cause`)
      return true
    })
  }
}
