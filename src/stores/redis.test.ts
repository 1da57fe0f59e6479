// RedisStore against a real Redis: redis://127.0.0.1:6379, or TESSERA_TEST_REDIS_URL. Without one the suite
// is skipped with a notice, except under CI=true, where an unreachable server is a failure.

import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { createServer } from 'node:net'
import { after, describe, it } from 'node:test'
import { Redis } from 'ioredis'
import { createClient, createSentinel } from 'redis'
import { runWithoutPackages } from '../../test/support.js'
import { SessionConfigError, StoreError } from '../errors.js'
import type { Store, StoreRecord } from '../store.js'
import { assertEveryCallFailsWithStoreError, runStoreContract } from '../testing/store-contract.js'
import { type RedisClient, RedisStore } from './redis.js'

const url = process.env.TESSERA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
const reachable = await canReach(url)
const skip = reachable
  ? undefined
  : `no Redis at ${url}; start one or set TESSERA_TEST_REDIS_URL to run the RedisStore tests`
if (skip !== undefined && process.env.CI !== 'true') console.warn(`# RedisStore tests skipped: ${skip}`)

/** Every prefix a store was given, so `after` can delete what the tests wrote. */
const prefixes = new Set<string>()
const newPrefix = (label = 't') => {
  const prefix = `tessera-test:${label}:${randomUUID()}:`
  prefixes.add(prefix)
  return prefix
}

// Shared user-owned clients: stores built on them must never close them.
const admin = reachable ? new Redis(url) : undefined
const nodeRedis = reachable ? await createClient({ url }).connect() : undefined
// RESP3 changes how some replies are shaped; the store must read both protocols alike.
const ioredis3 = reachable ? new Redis(url, { protocol: 3 }) : undefined
const nodeRedis3 = reachable ? await createClient({ url, RESP: 3 }).connect() : undefined

after(async () => {
  if (admin === undefined) return
  for (const prefix of prefixes) await deleteUnder(admin, prefix)
  await admin.quit()
  await nodeRedis?.close()
  await ioredis3?.quit()
  await nodeRedis3?.close()
})

if (!reachable && process.env.CI === 'true') {
  it('reaches Redis (CI=true: a missing service fails instead of skipping)', () => {
    assert.fail(`cannot reach Redis at ${url} (TESSERA_TEST_REDIS_URL)`)
  })
}

runStoreContract({
  name: 'RedisStore (user-supplied ioredis client)',
  create: () => new RedisStore({ client: admin!, prefix: newPrefix('io') }),
  skip,
})

runStoreContract({
  name: 'RedisStore (user-supplied node-redis client)',
  create: () => new RedisStore({ client: nodeRedis!, prefix: newPrefix('nr') }),
  skip,
})

runStoreContract({
  name: 'RedisStore (RESP3: ioredis protocol 3)',
  create: () => new RedisStore({ client: ioredis3!, prefix: newPrefix('io3') }),
  skip,
})

runStoreContract({
  name: 'RedisStore (RESP3: node-redis RESP 3)',
  create: () => new RedisStore({ client: nodeRedis3!, prefix: newPrefix('nr3') }),
  skip,
})

runStoreContract({
  name: 'RedisStore.open (own client)',
  create: () => RedisStore.open({ url, prefix: newPrefix('open') }),
  skip,
})

const T = 1_700_000_000_000
const HOUR = 3_600_000
const newKey = () => randomBytes(32).toString('hex')
const record = (options: Partial<StoreRecord> = {}): StoreRecord => ({
  data: '{}',
  expiresAt: T + HOUR,
  version: 1,
  ...options,
})

describe('RedisStore', skip === undefined ? {} : { skip }, () => {
  describe('key layout', () => {
    it('writes nothing outside its prefix, and sets a TTL on every key it writes', async () => {
      const prefix = newPrefix('layout')
      const store = new RedisStore({ client: admin!, prefix })
      const before = new Set(await scanAll(admin!, '*'))
      const used = await exerciseEveryMethod(store)
      const added = (await scanAll(admin!, '*')).filter((key) => !before.has(key))
      const ours = added.filter((key) => key.startsWith(prefix))
      assert.ok(ours.length >= 2, 'records and user indexes')
      for (const key of ours) assert.ok((await admin!.pttl(key)) > 0, `${key} has no TTL`)
      // Other clients of a shared server may add keys meanwhile; none of them may hold what this store writes.
      for (const key of added.filter((key) => !key.startsWith(prefix))) {
        const type = await admin!.type(key)
        if (type === 'string') assert.notEqual(await admin!.getrange(key, 0, 2), 'T1|', `${key} is a record`)
        if (type === 'zset') {
          const members = await admin!.zrange(key, 0, '-1')
          assert.ok(!members.some((member) => used.includes(member)), `${key} is a user index`)
        }
      }
    })

    it('stores keys and user IDs literally: glob, hash-tag and separator characters select nothing else', async () => {
      const prefix = newPrefix('literal')
      const store = new RedisStore({ client: admin!, prefix })
      const keys = ['*', 'a:b', '{tag}', '}{', '?', '[a-z]', '\\', 'sp ace', 'ünï\u{1F600}', '']
      const users = ['*', 'u:{x}', '', '[u]', 'ü s']
      for (const [i, key] of keys.entries()) {
        const userId = users[i % users.length]!
        assert.equal(await store.create(key, record({ data: `{"i":${i}}`, userId }), T), true)
        assert.equal(await admin!.exists(`${prefix}s:${key}`), 1, `key ${JSON.stringify(key)} is not literal`)
      }
      for (const [i, key] of keys.entries()) {
        assert.deepEqual(
          await store.get(key, T),
          record({ data: `{"i":${i}}`, userId: users[i % users.length] }),
        )
      }
      // '' is a user like any other, not "anonymous".
      assert.deepEqual((await store.listByUser('', T)).map((entry) => entry.key).sort(), ['sp ace', '{tag}'])
      assert.deepEqual((await store.listByUser('*', T)).map((entry) => entry.key).sort(), ['*', '[a-z]'])
      await store.destroy('*')
      assert.equal(await store.get('*', T), undefined)
      assert.equal((await store.get('a:b', T))?.data, '{"i":1}')
      assert.equal(await store.destroyByUser('*'), 1)
      assert.equal(await store.get('[a-z]', T), undefined, 'the [a-z] record belonged to user *')
      assert.equal(await store.destroyByUser('u:{x}'), 2)
      assert.equal((await store.get('a:b', T))?.data, undefined)
      assert.equal((await store.get('{tag}', T))?.userId, '')
    })

    it('escapes its prefix in SCAN patterns, so cleanup never reaches another prefix', async () => {
      const base = newPrefix('glob')
      const globby = `${base}*?[x]\\:`
      prefixes.add(globby)
      const victim = `${base}a?x\\:`
      prefixes.add(victim)
      const mine = new RedisStore({ client: admin!, prefix: globby })
      const theirs = new RedisStore({ client: admin!, prefix: victim })
      const [key, other] = [newKey(), newKey()]
      await mine.create(key, record({ expiresAt: T + 1000 }), T)
      await theirs.create(other, record({ expiresAt: T + 1000 }), T)
      assert.equal(await mine.cleanup(T + 1000), 1)
      assert.equal(await admin!.exists(`${victim}s:${other}`), 1)
      assert.equal(await theirs.cleanup(T + 1000), 1)
    })
  })

  describe('native expiry', () => {
    it('sets each record TTL to expiresAt - now from the manager clock, not Redis time', async () => {
      const prefix = newPrefix('ttl')
      const store = new RedisStore({ client: admin!, prefix })
      const key = newKey()
      await store.create(key, record({ userId: 'u' }), T)
      assertNear(await admin!.pttl(`${prefix}s:${key}`), HOUR)
      assert.equal(await store.touch(key, T + 3 * HOUR, T + 1000), true)
      assertNear(await admin!.pttl(`${prefix}s:${key}`), 3 * HOUR - 1000)
      await store.update(key, record({ version: 2, expiresAt: T + 2000, userId: 'u' }), 1, T + 1000)
      assertNear(await admin!.pttl(`${prefix}s:${key}`), 1000)
    })

    it('keeps the user index alive at least as long as its longest-lived member, then lets it go', async () => {
      const prefix = newPrefix('index-ttl')
      const store = new RedisStore({ client: admin!, prefix })
      const [short, long] = [newKey(), newKey()]
      await store.create(short, record({ expiresAt: T + 1000, userId: 'u' }), T)
      await store.create(long, record({ expiresAt: T + 5 * HOUR, userId: 'u' }), T)
      await store.touch(long, T + 9 * HOUR, T + 1)
      const index = `${prefix}u:u`
      assert.ok((await admin!.pttl(index)) >= 9 * HOUR - 1000, 'index outlives its members')
      // A listing past the short session's deadline prunes its member from the index.
      assert.deepEqual(
        (await store.listByUser('u', T + 2 * HOUR)).map((entry) => entry.key),
        [long],
      )
      assert.deepEqual(await admin!.zrange(index, 0, '-1'), [long])
      await store.destroyByUser('u')
      assert.equal(await admin!.exists(index), 0, 'an empty index is deleted')
    })

    it('hides a record once now reaches expiresAt although Redis still holds it', async () => {
      const prefix = newPrefix('hide')
      const store = new RedisStore({ client: admin!, prefix })
      const key = newKey()
      await store.create(key, record({ expiresAt: T + 1000 }), T)
      assert.equal(await store.get(key, T + 1000), undefined)
      assert.equal(await admin!.exists(`${prefix}s:${key}`), 1)
    })
  })

  describe('user index failures', () => {
    it('re-indexes a session on its next touch when an index write failed', async () => {
      const prefix = newPrefix('uncover')
      const store = new RedisStore({ client: admin!, prefix })
      const key = newKey()
      await store.create(key, record(), T)
      // A value of the wrong type makes the index script fail with WRONGTYPE while the record script succeeds.
      await admin!.set(`${prefix}u:u`, 'in the way', 'PX', HOUR)
      await assert.rejects(store.update(key, record({ version: 2, userId: 'u' }), 1, T), StoreError)
      assert.equal((await store.get(key, T))?.userId, 'u', 'the record write went through')
      await admin!.del(`${prefix}u:u`)
      assert.deepEqual(await store.listByUser('u', T), [], 'not indexed yet')
      // Well within the index deadline the update would have set, yet the record knows it is not covered.
      assert.equal(await store.touch(key, T + HOUR + 1, T + 1), true)
      assert.deepEqual(
        (await store.listByUser('u', T + 1)).map((entry) => entry.key),
        [key],
      )
    })
  })

  describe('round trips', () => {
    it('reads in one command and writes in one round trip; the server sees nothing else', async (t) => {
      const traced = traceCalls(new Redis(url))
      const monitor = await watchServer(traced.raw)
      try {
        // Loads every script, so that no NOSCRIPT fallback adds a command below.
        await exerciseEveryMethod(new RedisStore({ client: traced.client, prefix: newPrefix('warm') }))
        await monitor.since()
        const store = new RedisStore({ client: traced.client, prefix: newPrefix('rtt') })
        const [anon, bound] = [newKey(), newKey()]
        const cases: Array<[string, () => Promise<unknown>, string[], number]> = [
          ['create (anonymous)', () => store.create(anon, record(), T), ['EVALSHA'], 1],
          [
            'create (bound)',
            () => store.create(bound, record({ userId: 'u' }), T),
            ['EVALSHA', 'EVALSHA'],
            1,
          ],
          ['get', () => store.get(bound, T), ['GET'], 1],
          ['update (anonymous)', () => store.update(anon, record({ version: 2 }), 1, T), ['EVALSHA'], 1],
          [
            'update (bound)',
            () => store.update(bound, record({ version: 2, userId: 'u' }), 1, T),
            ['EVALSHA', 'EVALSHA'],
            1,
          ],
          ['touch', () => store.touch(bound, T + HOUR + 1000, T + 1000), ['EVALSHA'], 1],
          // Past twice the remaining lifetime: the index must be extended, after the script says whose it is.
          [
            'touch (past the index)',
            () => store.touch(bound, T + 9 * HOUR, T + 2000),
            ['EVALSHA', 'EVALSHA'],
            2,
          ],
          ['destroy', () => store.destroy(anon), ['DEL'], 1],
          ['listByUser', () => store.listByUser('u', T), ['ZREMRANGEBYSCORE', 'ZRANGE', 'GET'], 2],
        ]
        for (const [name, operation, commands, roundTrips] of cases) {
          const measured = await traced.measure(operation)
          assert.deepEqual(measured.commands, commands, `${name}: commands sent`)
          assert.equal(measured.roundTrips, roundTrips, `${name}: round trips`)
          assert.deepEqual(await monitor.since(), commands, `${name}: commands the server received`)
          t.diagnostic(`${name}: ${commands.join(' + ')} in ${roundTrips} round trip(s)`)
        }
      } finally {
        await monitor.stop()
        await traced.raw.quit()
      }
    })
  })

  describe('clients', () => {
    it('close() leaves a user-supplied ioredis or node-redis client open', async () => {
      for (const client of [admin!, nodeRedis!] as RedisClient[]) {
        const store = new RedisStore({ client, prefix: newPrefix('close') })
        await store.create(newKey(), record(), T)
        await store.close()
        await store.close()
      }
      assert.equal(await admin!.ping(), 'PONG')
      assert.equal(await nodeRedis!.ping(), 'PONG')
    })

    it('close() quits the client open() created; later calls reject with StoreError', async () => {
      const store = await RedisStore.open({ url, prefix: newPrefix('owned') })
      await store.create(newKey(), record(), T)
      await store.close()
      await store.close()
      await assert.rejects(store.get(newKey(), T), StoreError)
    })

    it('rejects with StoreError, the driver error as cause, once the user has quit the client', async () => {
      const io = new Redis(url)
      const nr = await createClient({ url }).connect()
      const stores = [
        new RedisStore({ client: io, prefix: newPrefix('quit') }),
        new RedisStore({ client: nr, prefix: newPrefix('quit') }),
      ]
      await io.quit()
      await nr.close()
      for (const store of stores) await assertEveryMethodRejects(store)
    })

    it('open() rejects with StoreError when nothing listens at the URL, and with SessionConfigError on a bad URL', async () => {
      const port = await freePort()
      await assert.rejects(
        RedisStore.open({ url: `redis://:hunter2@127.0.0.1:${port}` }),
        (error: unknown) => {
          assert.ok(error instanceof StoreError)
          assert.ok(error.cause instanceof Error)
          assert.doesNotMatch(error.message, /hunter2/)
          return true
        },
      )
      for (const bad of ['http://127.0.0.1:6379', '127.0.0.1:6379', '']) {
        await assert.rejects(RedisStore.open({ url: bad }), SessionConfigError)
      }
    })

    it('names both drivers when neither can be loaded, and falls back to node-redis without ioredis', () => {
      const run = (hidden: string[]) => {
        const script = `
            const { RedisStore } = await import(${JSON.stringify(new URL('./redis.ts', import.meta.url).href)})
            try {
              const store = await RedisStore.open({ url: ${JSON.stringify(url)}, prefix: ${JSON.stringify(newPrefix('driver'))} })
              const created = await store.create('k', { data: '{"x":1}', expiresAt: Date.now() + 60000, version: 1 }, Date.now())
              const read = await store.get('k', Date.now())
              await store.destroy('k')
              await store.close()
              console.log(JSON.stringify({ created, data: read?.data }))
            } catch (error) {
              console.log(JSON.stringify({ code: error.code, message: error.message }))
            }
          `
        const child = runWithoutPackages(hidden, script)
        assert.equal(child.status, 0, child.stderr)
        return JSON.parse(child.stdout) as unknown
      }
      assert.deepEqual(run(['ioredis']), { created: true, data: '{"x":1}' })
      const outcome = run(['ioredis', 'redis']) as { code: string; message: string }
      assert.equal(outcome.code, 'ERR_SESSION_CONFIG')
      assert.match(outcome.message, /npm install ioredis/)
      assert.match(outcome.message, /npm install redis/)
    })
  })

  describe('values it did not write', () => {
    it('rejects with StoreError instead of reading or overwriting them; destroy deletes, cleanup skips', async () => {
      const prefix = newPrefix('foreign')
      const store = new RedisStore({ client: admin!, prefix })
      const [plain, hash] = [newKey(), newKey()]
      await admin!.set(`${prefix}s:${plain}`, 'not a session', 'PX', HOUR)
      await admin!.hset(`${prefix}s:${hash}`, 'data', '{}')
      await admin!.pexpire(`${prefix}s:${hash}`, HOUR)
      for (const key of [plain, hash]) {
        await assert.rejects(store.get(key, T), StoreError)
        await assert.rejects(store.create(key, record(), T), StoreError)
        await assert.rejects(store.update(key, record({ version: 2 }), 1, T), StoreError)
        await assert.rejects(store.touch(key, T + 2 * HOUR, T), StoreError)
      }
      await assert.rejects(store.get(hash, T), (error: unknown) => {
        assert.ok(error instanceof StoreError)
        assert.match(String((error.cause as Error).message), /^WRONGTYPE /)
        return true
      })
      assert.equal(await admin!.get(`${prefix}s:${plain}`), 'not a session')
      assert.equal(await store.cleanup(T + 100 * HOUR), 0)
      assert.equal(await admin!.exists(`${prefix}s:${plain}`, `${prefix}s:${hash}`), 2)
      await store.destroy(plain)
      await store.destroy(hash)
      assert.equal(await admin!.exists(`${prefix}s:${plain}`, `${prefix}s:${hash}`), 0)
    })
  })

  describe('options', () => {
    it('rejects a bad prefix, batch size or client with SessionConfigError', async () => {
      for (const prefix of ['', 'has space', 'tab\t', 'new\nline', 'é:', 'x'.repeat(257)]) {
        assert.throws(
          () => new RedisStore({ client: admin!, prefix }),
          SessionConfigError,
          JSON.stringify(prefix),
        )
        await assert.rejects(RedisStore.open({ url, prefix }), SessionConfigError)
      }
      for (const cleanupBatchSize of [0, -1, 1.5, 100_001]) {
        assert.throws(() => new RedisStore({ client: admin!, cleanupBatchSize }), SessionConfigError)
      }
      for (const client of [null, {}, { get: () => undefined }, 'redis://127.0.0.1']) {
        assert.throws(() => new RedisStore({ client: client as unknown as RedisClient }), SessionConfigError)
      }
      new RedisStore({ client: admin!, prefix: `{app}~!"#$%&'()*+,-./0-9:;<=>?@[\\]^_\`|:` })
    })

    it('refuses a node-redis Sentinel client (ioredis covers Sentinel)', () => {
      const sentinel = createSentinel({
        name: 'mymaster',
        sentinelRootNodes: [{ host: '127.0.0.1', port: 26379 }],
      })
      assert.throws(() => new RedisStore({ client: sentinel as unknown as RedisClient }), SessionConfigError)
    })

    it('refuses a client with a keyPrefix of its own', async () => {
      const io = new Redis(url, { keyPrefix: 'app:', lazyConnect: true })
      assert.throws(() => new RedisStore({ client: io }), SessionConfigError)
      io.disconnect()
      const nr = createClient({ url, keyPrefix: 'app:' })
      assert.throws(() => new RedisStore({ client: nr }), SessionConfigError)
    })

    it('rejects times and versions that are not non-negative safe integers with StoreError (TypeError cause)', async () => {
      const store = new RedisStore({ client: admin!, prefix: newPrefix('ints') })
      for (const expiresAt of [T + 0.5, -1, Number.MAX_SAFE_INTEGER + 2, Number.NaN]) {
        await assert.rejects(store.create(newKey(), record({ expiresAt }), T), (error: unknown) => {
          assert.ok(error instanceof StoreError && error.cause instanceof TypeError)
          return true
        })
      }
      await assert.rejects(store.touch(newKey(), T + 0.5, T), StoreError)
    })
  })

  describe('capacity', () => {
    it('measures bytes per session: a record with a 200-byte payload plus its share of the user index', async (t) => {
      // As long as the default 'tessera:', since the key's length counts too.
      const prefix = `t${randomBytes(3).toString('hex')}:`
      prefixes.add(prefix)
      const store = new RedisStore({ client: admin!, prefix })
      const sessions = 200
      const users = 20
      const payload = JSON.stringify({ cart: 'x'.repeat(189) })
      assert.equal(Buffer.byteLength(payload), 200)
      const keys = Array.from({ length: sessions }, newKey)
      for (const [i, key] of keys.entries()) {
        await store.create(key, record({ data: payload, userId: `user-${i % users}` }), T)
      }
      const usage = (key: string) => admin!.call('MEMORY', 'USAGE', key, 'SAMPLES', '0') as Promise<number>
      const anonymousKey = newKey()
      await store.create(anonymousKey, record({ data: payload }), T)
      let recordBytes = 0
      for (const key of keys) recordBytes += await usage(`${prefix}s:${key}`)
      let indexBytes = 0
      for (let u = 0; u < users; u++) indexBytes += await usage(`${prefix}u:user-${u}`)
      const perRecord = recordBytes / sessions
      const perIndexShare = indexBytes / sessions
      t.diagnostic(
        `bytes per session (200-byte payload): record ${perRecord.toFixed(0)}, anonymous record ${await usage(`${prefix}s:${anonymousKey}`)}, user index share ${perIndexShare.toFixed(0)} (${sessions / users} sessions per user), total ${(perRecord + perIndexShare).toFixed(0)}`,
      )
      assert.ok(perRecord < 400, `a record takes ${perRecord} bytes`)
    })
  })
})

/** Runs every Store method, taking each code path (so every script gets loaded); resolves the keys used. */
async function exerciseEveryMethod(store: Store): Promise<string[]> {
  const [a, b, c] = [newKey(), newKey(), newKey()]
  await store.create(a, record({ userId: 'u' }), T)
  await store.create(b, record({ expiresAt: T + 1000 }), T)
  await store.create(c, record({ userId: 'v' }), T)
  await store.get(a, T)
  await store.update(a, record({ version: 2, userId: 'w' }), 1, T)
  await store.update(a, record({ version: 3, userId: 'u' }), 2, T)
  await store.touch(a, T + 5 * HOUR, T + 1) // past the index deadline
  await store.touch(a, T + 5 * HOUR + 1, T + 2)
  await store.listByUser('u', T)
  await store.destroyByUser('v')
  await store.destroy(a)
  await store.cleanup(T + 1000)
  return [a, b, c]
}

async function assertEveryMethodRejects(store: Store): Promise<void> {
  await assertEveryCallFailsWithStoreError(store, T)
  await store.close()
}

function assertNear(actual: number, expected: number): void {
  assert.ok(actual <= expected && actual > expected - 2000, `expected about ${expected}, got ${actual}`)
}

/**
 * Wraps an ioredis client so the test sees every command the store sends and when: a command is tagged
 * with how many replies had arrived when it was sent, so commands sent together (pipelined, before any
 * reply) share a tag, and the number of distinct tags is the number of round trips the store waited for.
 */
function traceCalls(raw: Redis) {
  let replies = 0
  const sent: Array<{ command: string; after: number }> = []
  const client = new Proxy(raw, {
    get(target, property) {
      if (property === 'call') {
        return (command: string, ...args: string[]) => {
          sent.push({ command, after: replies })
          return target.call(command, ...args).finally(() => {
            replies++
          })
        }
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return {
    raw,
    client,
    async measure(operation: () => Promise<unknown>) {
      sent.length = 0
      replies = 0
      await operation()
      return {
        commands: sent.map((entry) => entry.command),
        roundTrips: new Set(sent.map((entry) => entry.after)).size,
      }
    },
  }
}

/**
 * Watches, through MONITOR on a separate connection, the commands the server receives from `client`'s
 * connection (commands run inside scripts show up under another source and are left out).
 */
async function watchServer(client: Redis) {
  const info = String(await client.call('CLIENT', 'INFO'))
  const address = /\baddr=(\S+)/.exec(info)?.[1]
  assert.ok(address, info)
  const base = new Redis(url)
  const monitor = await base.monitor() // a second connection, in monitor mode
  let seen: string[] = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source === address) seen.push(String(args[0]).toUpperCase())
  })
  return {
    /** The commands received since the last call, once a marker sent afterwards has been seen. */
    async since(): Promise<string[]> {
      const marker = `marker-${randomUUID()}`
      await client.echo(marker)
      for (let i = 0; i < 200 && seen.at(-1) !== 'ECHO'; i++) await new Promise((r) => setTimeout(r, 10))
      const commands = seen.slice(0, -1)
      seen = []
      return commands
    },
    async stop() {
      monitor.disconnect()
      await base.quit()
    },
  }
}

async function scanAll(client: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
    keys.push(...batch)
    cursor = next
  } while (cursor !== '0')
  return keys
}

async function deleteUnder(client: Redis, prefix: string): Promise<void> {
  const keys = await scanAll(client, `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`)
  for (let i = 0; i < keys.length; i += 500) await client.del(...keys.slice(i, i + 500))
}

async function canReach(target: string): Promise<boolean> {
  const probe = new Redis(target, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  probe.on('error', () => undefined)
  try {
    await probe.connect()
    return (await probe.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

/** A loopback port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('RedisStore.open({ lazy: true })', () => {
  // A free loopback port: nothing listens there until the test starts a redis-server on it.
  async function freePort(): Promise<number> {
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as { port: number }
    await new Promise((resolve) => server.close(resolve))
    return port
  }

  for (const driver of ['ioredis', 'redis'] as const) {
    it(
      driver === 'ioredis'
        ? 'returns at once while Redis is down, fails calls with a StoreError, and serves once Redis is up (ioredis)'
        : 'returns at once while Redis is down and fails calls with a StoreError, never hangs (node-redis)',
      async (t) => {
        const { spawn } = await import('node:child_process')
        const { createSessionManager } = await import('../manager.js')
        const port = await freePort()
        const storeUrl = `redis://127.0.0.1:${port}`
        const hidden = driver === 'redis' ? ['ioredis'] : []
        if (hidden.length > 0) {
          // node-redis is picked only when ioredis is missing: prove that path in a child process.
          const script = `
          import { RedisStore } from ${JSON.stringify(new URL('./redis.ts', import.meta.url).href)}
          const store = await RedisStore.open({ url: ${JSON.stringify(storeUrl)}, lazy: true })
          const failed = await Promise.race([store.get('a'.repeat(64), Date.now()).then(() => 'answered', (e) => e.name), new Promise((r) => setTimeout(() => r('pending'), 1500))])
          await store.close()
          console.log('RESULT', failed)`
          const child = runWithoutPackages(hidden, script, { timeout: 20_000 })
          assert.match(child.stdout, /RESULT (StoreError|pending)/, child.stderr)
          return
        }
        const opened = performance.now()
        const store = await RedisStore.open({ url: storeUrl, lazy: true, prefix: newPrefix('lazy') })
        assert.ok(performance.now() - opened < 500, 'open() did not wait for the server')
        const sessions = createSessionManager({
          store,
          secrets: ['vN3kQ8xT2mW9pL4rJ7cH1sF6gB0dY5zE-aU_iOqXtK'],
          storeTimeout: 300,
          cookie: { secure: false },
        })
        const session = await sessions.load({ cookie: undefined })
        session.set('n', 1)
        await assert.rejects(sessions.commit(session), StoreError)
        const dir = (await import('node:fs')).mkdtempSync(
          `${(await import('node:os')).tmpdir()}/tessera-lazy-`,
        )
        const server = spawn(
          'redis-server',
          ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
          { stdio: 'ignore' },
        )
        t.after(async () => {
          await store.close()
          server.kill('SIGKILL')
          ;(await import('node:fs')).rmSync(dir, { recursive: true, force: true })
        })
        let saved = false
        for (let i = 0; i < 100 && !saved; i++) {
          const again = await sessions.load({ cookie: undefined })
          again.set('n', 1)
          saved = await sessions.commit(again).then(
            () => true,
            () => false,
          )
          if (!saved) await new Promise((resolve) => setTimeout(resolve, 100))
        }
        assert.ok(saved, 'a session was saved once Redis came up, without reopening the store')
      },
    )
  }
})
