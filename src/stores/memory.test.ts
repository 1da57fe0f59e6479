import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { SessionConfigError } from '../errors.js'
import type { KeyedStoreRecord, StoreRecord } from '../store.js'
import { runStoreContract } from '../testing/store-contract.js'
import { MemoryStore } from './memory.js'

runStoreContract({ name: 'MemoryStore', create: () => new MemoryStore({ cleanupIntervalMs: 0 }) })

const T = 1_700_000_000_000
const HOUR = 3_600_000
const key = (n: number) => n.toString(16).padStart(64, '0')
// Three keys that share the store's 30-bit hash (found by search): two digests and a raw key. The store keeps
// records whose keys collide side by side in one Map entry, and the key in the record decides.
const digest = (text: string) => createHash('sha256').update(text).digest('hex')
const COLLIDING = [digest('collide-1095'), digest('collide-4509'), 'x323049376']
const record = (userId?: string, expiresAt = T + HOUR): StoreRecord => ({
  data: '{}',
  expiresAt,
  version: 1,
  userId,
})

describe('MemoryStore', () => {
  describe('bounds', () => {
    it('evicts the least recently used record beyond maxSessions; reads and writes count as use', async () => {
      const store = new MemoryStore({ maxSessions: 100, cleanupIntervalMs: 0 })
      for (let i = 0; i < 100; i++) await store.create(key(i), record(), T)
      await store.get(key(0), T) // read: 0 is now the most recent
      await store.touch(key(1), T + 2 * HOUR, T) // write: so is 1
      await store.create(key(100), record(), T)
      assert.equal(store.size, 100)
      assert.equal(store.evictions, 1)
      assert.equal(await store.get(key(2), T), undefined)
      assert.notEqual(await store.get(key(0), T), undefined)
      assert.notEqual(await store.get(key(1), T), undefined)
      assert.notEqual(await store.get(key(100), T), undefined)
    })

    it('reclaims expired records before evicting a live one', async () => {
      const store = new MemoryStore({ maxSessions: 3, cleanupIntervalMs: 0 })
      await store.create(key(1), record(undefined, T + 1000), T)
      await store.create(key(2), record(), T)
      await store.create(key(3), record(), T)
      await store.create(key(4), record(), T + 1000)
      assert.equal(store.size, 3)
      assert.equal(store.evictions, 0)
      for (const n of [2, 3, 4]) assert.notEqual(await store.get(key(n), T + 1000), undefined)
    })

    it('keeps the user index exact through eviction', async () => {
      const store = new MemoryStore({ maxSessions: 2, cleanupIntervalMs: 0 })
      await store.create(key(1), record('a'), T)
      await store.create(key(2), record('a'), T)
      await store.create(key(3), record('b'), T) // evicts key(1)
      assert.deepEqual(keysOf(await store.listByUser('a', T)), [key(2)])
      await store.create(key(4), record(), T) // evicts key(2), a's last record
      assert.deepEqual(await store.listByUser('a', T), [])
      assert.equal(await store.destroyByUser('a'), 0)
      assert.equal(store.users, 1, 'no empty entry is left behind for user a')
      await store.create(key(5), record(), T) // evicts key(3), b's only record
      assert.equal(store.users, 0)
      assert.equal(store.evictions, 3)
    })

    it('rejects out-of-range options with SessionConfigError', () => {
      for (const maxSessions of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        assert.throws(() => new MemoryStore({ maxSessions }), SessionConfigError)
      }
      for (const cleanupIntervalMs of [-1, 0.5, 2 ** 31]) {
        assert.throws(() => new MemoryStore({ cleanupIntervalMs }), SessionConfigError)
      }
    })
  })

  describe('cleanup', () => {
    it('visits only the expired records, however many are stored', async () => {
      const store = new MemoryStore({ maxSessions: 200_000, cleanupIntervalMs: 0 })
      for (let i = 0; i < 100_000; i++) await store.create(key(i), record(undefined, T + HOUR + i), T)
      for (let i = 0; i < 10; i++) await store.create(key(100_000 + i), record(undefined, T + 1000 + i), T)
      assert.equal(await store.cleanup(T + 2000), 10)
      assert.equal(store.lastCleanupVisited, 10)
      assert.equal(store.size, 100_000)
    })

    it('walks no empty time slots after a clock jump of a thousand years', async () => {
      const store = new MemoryStore({ cleanupIntervalMs: 0 })
      for (let i = 0; i < 50; i++) await store.create(key(i), record(undefined, T + i * 7 * 24 * HOUR), T)
      assert.equal(await store.cleanup(T + 1000 * 365 * 24 * HOUR), 50)
      assert.equal(store.lastCleanupVisited, 50)
    })

    it('does not pile up superseded expiry entries when one record is touched over and over', async () => {
      const store = new MemoryStore({ cleanupIntervalMs: 0 })
      await store.create(key(1), record(), T)
      for (let i = 1; i <= 20_000; i++) await store.touch(key(1), T + HOUR + i, T)
      assert.equal(await store.cleanup(T + 2 * HOUR), 1)
      // Compaction keeps the heap under 2 × live + 1024, so that is all the sweep can find.
      assert.ok(store.lastCleanupVisited <= 1027, `visited ${store.lastCleanupVisited}`)
    })

    it('runs on the timer with the injected clock and stops on close()', async (t) => {
      t.mock.timers.enable({ apis: ['setInterval'] })
      let now = T
      const store = new MemoryStore({ cleanupIntervalMs: 60_000, clock: () => now })
      await store.create(key(1), record(undefined, T + 1000), T)
      await store.create(key(2), record(undefined, T + HOUR), T)
      now = T + 1000
      t.mock.timers.tick(60_000)
      assert.equal(store.size, 1)
      await store.close()
      now = T + HOUR
      t.mock.timers.tick(60_000)
      assert.equal(store.size, 1)
    })

    it('leaves a process with only the cleanup timer free to exit', () => {
      const moduleUrl = new URL('./memory.ts', import.meta.url).href
      const script = `
        const { MemoryStore } = await import(${JSON.stringify(moduleUrl)})
        const store = new MemoryStore({ cleanupIntervalMs: 10 })
        await store.create('k', { data: '{}', expiresAt: Date.now() + 60_000, version: 1 }, Date.now())
      `
      const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        timeout: 10_000,
        encoding: 'utf8',
      })
      assert.equal(child.error, undefined, 'the process did not exit by itself within 10 s')
      assert.equal(child.status, 0, child.stderr)
    })
  })

  describe('representation', () => {
    it('keeps records whose keys share a hash apart, through every operation', async () => {
      const store = new MemoryStore({ cleanupIntervalMs: 0 })
      const [a, b, c] = COLLIDING as [string, string, string]
      await store.create(a, { data: '{"a":1}', expiresAt: T + 1000, version: 1, userId: 'u' }, T)
      await store.create(b, { data: '{"b":1}', expiresAt: T + HOUR, version: 1, userId: 'u' }, T)
      await store.create(c, { data: '{"c":1}', expiresAt: T + HOUR, version: 1 }, T)
      assert.equal(await store.create(b, record(), T), false)
      assert.equal(store.size, 3)
      assert.deepEqual(normalize(await store.get(a, T)), {
        data: '{"a":1}',
        expiresAt: T + 1000,
        version: 1,
        userId: 'u',
      })
      assert.equal((await store.get(b, T))?.data, '{"b":1}')
      assert.equal((await store.get(c, T))?.data, '{"c":1}')
      assert.equal(await store.update(b, { data: '{"b":2}', expiresAt: T + HOUR, version: 2 }, 1, T), true)
      assert.equal(await store.update(b, { data: '{"b":3}', expiresAt: T + HOUR, version: 2 }, 1, T), false)
      assert.equal(await store.touch(c, T + 2 * HOUR, T), true)
      assert.deepEqual(keysOf(await store.listByUser('u', T)), [a].sort())
      assert.equal(await store.cleanup(T + 1000), 1)
      assert.equal(await store.get(a, T), undefined)
      assert.equal((await store.get(b, T + 1000))?.data, '{"b":2}')
      assert.equal((await store.get(c, T + HOUR))?.data, '{"c":1}')
      await store.destroy(b)
      assert.equal(await store.get(b, T), undefined)
      assert.equal((await store.get(c, T))?.data, '{"c":1}')
      assert.equal(store.size, 1)
      assert.equal(store.users, 0)
    })

    it('keeps any key, version and expiry exactly, whatever does not fit the compact header', async () => {
      const store = new MemoryStore({ cleanupIntervalMs: 0 })
      const keys = [
        'k',
        '',
        'A'.repeat(64),
        `${'f'.repeat(63)}g`,
        'é'.repeat(20),
        key(0xabc).toUpperCase(),
        key(0xabc),
      ]
      const cases: StoreRecord[] = [
        { data: '{}', expiresAt: T + 0.5, version: 1 },
        { data: '{"x":"ü ✓ 👩🏽‍💻"}', expiresAt: 2 ** 52, version: Number.MAX_SAFE_INTEGER, userId: 'ü' },
        { data: '', expiresAt: T + HOUR, version: 0 },
        { data: '{}', expiresAt: T + HOUR, version: 2 ** 40 + 7, userId: '' },
        { data: '\u0000\uffff\ud800', expiresAt: T + HOUR, version: 65_536 },
        { data: '{}', expiresAt: T + HOUR, version: -3 },
        { data: '{"y":1}', expiresAt: T + HOUR, version: 300 },
      ]
      for (const [i, k] of keys.entries()) assert.equal(await store.create(k, cases[i]!, T), true, k)
      for (const [i, k] of keys.entries())
        assert.deepEqual(normalize(await store.get(k, T)), normalize(cases[i]), k)
      assert.deepEqual(keysOf(await store.listByUser('ü', T)), [''])
      assert.deepEqual(keysOf(await store.listByUser('', T)), [`${'f'.repeat(63)}g`])
      assert.equal(await store.destroyByUser('ü', { exceptKey: 'k' }), 1)
      assert.equal(store.size, keys.length - 1)
    })

    it('counts bytes of data only, in UTF-8, for stats()', async () => {
      const store = new MemoryStore({ cleanupIntervalMs: 0 })
      await store.create(key(1), { data: '{"a":"é"}', expiresAt: T + 1000, version: 1, userId: 'üser' }, T)
      await store.create('raw key', { data: '{"b":"👩🏽"}', expiresAt: T + HOUR, version: 1 }, T)
      const bytes = Buffer.byteLength('{"a":"é"}') + Buffer.byteLength('{"b":"👩🏽"}')
      assert.deepEqual(await store.stats(T + 1000), { live: 1, expired: 1, bytes })
    })

    it('reports the records one cleanup deleted to onProgress, once', async () => {
      const store = new MemoryStore({ cleanupIntervalMs: 0 })
      for (let i = 0; i < 3; i++) await store.create(key(i), record(undefined, T + 1000), T)
      const reported: number[] = []
      assert.equal(await store.cleanup(T + 1000, { onProgress: (n) => reported.push(n) }), 3)
      assert.equal(await store.cleanup(T + 1000, { onProgress: (n) => reported.push(n) }), 0)
      assert.deepEqual(reported, [3])
    })
  })

  it('evicts in exact least-recently-used order under random operations', async () => {
    const keys = [1, 2, 3, 4, 5, 6].map(key)
    const operation = fc.record({
      op: fc.constantFrom('get', 'create', 'update', 'touch', 'destroy'),
      key: fc.constantFrom(...keys),
      version: fc.integer({ min: 1, max: 3 }),
    })
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { maxLength: 80 }), async (operations) => {
        const store = new MemoryStore({ maxSessions: 3, cleanupIntervalMs: 0 })
        // Keys from least to most recently used, with their versions.
        const order: string[] = []
        const versions = new Map<string, number>()
        const use = (k: string) => {
          order.splice(order.indexOf(k), 1)
          order.push(k)
        }
        let evicted = 0
        for (const { op, key: k, version } of operations) {
          const held = versions.has(k)
          switch (op) {
            case 'get':
              assert.equal((await store.get(k, T))?.version, versions.get(k))
              if (held) use(k)
              break
            case 'create':
              assert.equal(await store.create(k, record(), T), !held)
              if (!held) {
                order.push(k)
                versions.set(k, 1)
                if (order.length > 3) {
                  versions.delete(order.shift()!)
                  evicted++
                }
              }
              break
            case 'update': {
              const ok = versions.get(k) === version
              assert.equal(await store.update(k, { ...record(), version: version + 1 }, version, T), ok)
              if (ok) {
                versions.set(k, version + 1)
                use(k)
              }
              break
            }
            case 'touch':
              assert.equal(await store.touch(k, T + 2 * HOUR, T), held)
              if (held) use(k)
              break
            case 'destroy':
              await store.destroy(k)
              if (held) {
                order.splice(order.indexOf(k), 1)
                versions.delete(k)
              }
              break
          }
          assert.equal(store.size, order.length)
          assert.equal(store.evictions, evicted)
        }
      }),
      { numRuns: 500 },
    )
  })

  it('behaves like a plain reference model under random operations', async () => {
    const keys = [key(1), key(2), ...COLLIDING]
    const users = ['a', 'b', undefined]
    const anyKey = fc.constantFrom(...keys)
    const operation = fc.record({
      op: fc.constantFrom('get', 'create', 'update', 'touch', 'destroy', 'list', 'destroyByUser', 'cleanup'),
      key: anyKey,
      exceptKey: fc.option(anyKey, { nil: undefined }),
      userId: fc.constantFrom(...users),
      expiresIn: fc.integer({ min: 0, max: 5 }).map((seconds) => seconds * 1000),
      version: fc.integer({ min: 1, max: 4 }),
      advance: fc.integer({ min: 0, max: 2 }).map((seconds) => seconds * 1000),
    })

    await fc.assert(
      fc.asyncProperty(fc.array(operation, { maxLength: 60 }), async (operations) => {
        const store = new MemoryStore({ cleanupIntervalMs: 0 })
        const model = new Map<string, StoreRecord>()
        const live = (k: string, now: number) => {
          const found = model.get(k)
          return found !== undefined && found.expiresAt > now ? found : undefined
        }
        let now = T
        for (const { op, key: k, exceptKey, userId, expiresIn, version, advance } of operations) {
          now += advance
          const next: StoreRecord = { data: `{"at":${now}}`, expiresAt: now + expiresIn, version, userId }
          switch (op) {
            case 'get':
              assert.deepEqual(normalize(await store.get(k, now)), normalize(live(k, now)))
              break
            case 'create': {
              const expected = live(k, now) === undefined
              if (expected) model.set(k, { ...next, version: 1 })
              assert.equal(await store.create(k, { ...next, version: 1 }, now), expected)
              break
            }
            case 'update': {
              const expected = live(k, now)?.version === version
              if (expected) model.set(k, { ...next, version: version + 1 })
              assert.equal(await store.update(k, { ...next, version: version + 1 }, version, now), expected)
              break
            }
            case 'touch': {
              const found = live(k, now)
              if (found) model.set(k, { ...found, expiresAt: Math.max(found.expiresAt, next.expiresAt) })
              assert.equal(await store.touch(k, next.expiresAt, now), found !== undefined)
              break
            }
            case 'destroy':
              model.delete(k)
              await store.destroy(k)
              break
            case 'list': {
              if (userId === undefined) break
              const expected = [...model].filter(([mk, r]) => r.userId === userId && live(mk, now))
              const actual = await store.listByUser(userId, now)
              assert.deepEqual(
                sortEntries(actual),
                sortEntries(expected.map(([mk, r]) => ({ key: mk, record: r }))),
              )
              break
            }
            case 'destroyByUser': {
              if (userId === undefined) break
              const owned = [...model].filter(([mk, r]) => r.userId === userId && mk !== exceptKey)
              const liveCount = owned.filter(([mk]) => live(mk, now)).length
              for (const [mk] of owned) model.delete(mk)
              // Expired records may or may not have been dropped already; the count may include them.
              const deleted = await store.destroyByUser(userId, { exceptKey })
              assert.ok(deleted >= liveCount && deleted <= owned.length)
              break
            }
            case 'cleanup':
              for (const [mk] of model) if (!live(mk, now)) model.delete(mk)
              await store.cleanup(now)
              assert.equal(store.size, model.size)
              break
          }
        }
        await store.close()
      }),
      { numRuns: 1000 },
    )
  })
})

function normalize(found: StoreRecord | undefined) {
  return (
    found && { data: found.data, expiresAt: found.expiresAt, version: found.version, userId: found.userId }
  )
}

function sortEntries(entries: readonly KeyedStoreRecord[]) {
  return entries
    .map((e) => ({ key: e.key, record: normalize(e.record) }))
    .sort((a, b) => a.key.localeCompare(b.key))
}

function keysOf(entries: readonly KeyedStoreRecord[]): string[] {
  return entries.map((entry) => entry.key).sort()
}
