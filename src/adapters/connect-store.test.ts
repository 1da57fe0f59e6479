// fromConnectStore against real express-session stores: memorystore, express-session's own MemoryStore, and
// connect-redis on a real Redis (redis://127.0.0.1:6379, or TESSERA_TEST_REDIS_URL). Without Redis the
// connect-redis suites are skipped with a notice, except under CI=true, where that is a failure.
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { after, describe, it } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { RedisStore as ConnectRedisStore } from 'connect-redis'
import { Redis } from 'ioredis'
import createMemoryStore from 'memorystore'
import { createClient } from 'redis'
import { request, SECRET_A } from '../../test/support.js'
import { StoreError } from '../errors.js'
import { createSessionManager } from '../manager.js'
import type { StoreRecord } from '../store.js'
import { runStoreContract } from '../testing/store-contract.js'
import { type ConnectSession, type ConnectStore, fromConnectStore } from './connect-store.js'

// express-session ships no type declarations; only its Store classes are used here.
type ExpressSession = { MemoryStore: new () => ConnectStore }
const expressSession = createRequire(import.meta.url)('express-session') as ExpressSession
// memorystore's declarations extend express-session's, which are not installed (@types/express-session).
const MemoryStore = createMemoryStore(expressSession as never) as unknown as new (options: {
  checkPeriod?: number
}) => ConnectStore

const url = process.env.TESSERA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
const reachable = await canReach(url)
const skip = reachable
  ? undefined
  : `no Redis at ${url}; start one or set TESSERA_TEST_REDIS_URL to run the connect-redis bridge tests`
if (skip !== undefined && process.env.CI !== 'true') console.warn(`# connect-redis tests skipped: ${skip}`)
if (!reachable && process.env.CI === 'true') {
  it('reaches Redis (CI=true: a missing service fails instead of skipping)', () => {
    assert.fail(`cannot reach Redis at ${url} (TESSERA_TEST_REDIS_URL)`)
  })
}

const client = reachable ? await createClient({ url }).connect() : undefined
const runPrefix = `tessera-test:connect:${randomUUID()}:`
after(async () => {
  if (client === undefined) return
  const keys: string[] = []
  for await (const batch of client.scanIterator({ MATCH: `${runPrefix}*`, COUNT: 500 })) keys.push(...batch)
  if (keys.length > 0) await client.del(keys)
  await client.close()
})
const connectRedis = () => new ConnectRedisStore({ client, prefix: `${runPrefix}${randomUUID()}:` })

runStoreContract({
  name: 'fromConnectStore(memorystore)',
  create: () => fromConnectStore(new MemoryStore({ checkPeriod: 0 }), { ephemeral: true }),
})

runStoreContract({
  name: "fromConnectStore(express-session's MemoryStore)",
  create: () => fromConnectStore(new expressSession.MemoryStore(), { ephemeral: true }),
})

runStoreContract({
  name: 'fromConnectStore(connect-redis)',
  create: () => fromConnectStore(connectRedis()),
  skip,
})

const T = 1_700_000_000_000
const HOUR = 3_600_000
const newKey = () => randomBytes(32).toString('hex')
const record = (data = '{}', userId?: string, expiresAt = T + HOUR): StoreRecord => ({
  data,
  expiresAt,
  version: 1,
  userId,
})

/** A store that answers through `answer`, for the failure paths. */
function fakeStore(
  answer: (method: string, callback: (error?: unknown, value?: unknown) => void) => unknown,
) {
  return {
    get: (_sid: string, callback: (error?: unknown, value?: unknown) => void) => answer('get', callback),
    set: (_sid: string, _session: unknown, callback?: (error?: unknown) => void) => answer('set', callback!),
    destroy: (_sid: string, callback?: (error?: unknown) => void) => answer('destroy', callback!),
  }
}

describe('fromConnectStore', () => {
  it('hands the store a session object whose cookie expiry drives its own TTL, in its own clock', async () => {
    const held = new Map<string, ConnectSession>()
    const store: ConnectStore = {
      get: (sid, callback) => callback(null, held.get(sid)),
      set: (sid, session, callback) => {
        held.set(sid, session)
        callback?.()
      },
      destroy: (sid, callback) => {
        held.delete(sid)
        callback?.()
      },
    }
    const wall = 1_800_000_000_000 // the store's clock differs from the manager's (T): only the remaining time counts
    const bridge = fromConnectStore(store, { clock: () => wall })
    const key = newKey()
    await bridge.create(key, record('{"a":1}', 'u', T + 90_000), T)
    const session = held.get(key)!
    assert.equal(session.cookie.expires.getTime(), wall + 90_000)
    assert.equal(session.cookie.maxAge, 90_000)
    assert.deepEqual(session.tessera, {
      key,
      data: '{"a":1}',
      expiresAt: T + 90_000,
      version: 1,
      userId: 'u',
    })
  })

  it('memorystore frees the record itself when its time is up', async () => {
    const bridge = fromConnectStore(new MemoryStore({ checkPeriod: 0 }), { ephemeral: true })
    const key = newKey()
    const now = Date.now()
    await bridge.create(key, record('{}', undefined, now + 30), now)
    assert.notEqual(await bridge.get(key, now), undefined)
    await new Promise((resolve) => setTimeout(resolve, 60))
    assert.equal(await bridge.get(key, now), undefined, 'gone from the store, not only hidden')
  })

  it('without all(): listByUser resolves [], destroyByUser and cleanup resolve 0', async () => {
    const plain = new expressSession.MemoryStore()
    const bridge = fromConnectStore({
      get: plain.get.bind(plain),
      set: plain.set.bind(plain),
      destroy: plain.destroy.bind(plain),
    })
    const key = newKey()
    await bridge.create(key, record('{}', 'u', T + 1000), T)
    assert.deepEqual(await bridge.listByUser('u', T), [])
    assert.equal(await bridge.destroyByUser('u'), 0)
    assert.equal(await bridge.cleanup(T + 2000), 0)
    assert.notEqual(await bridge.get(key, T), undefined, 'the session itself still works')
  })

  it('fails with a StoreError carrying the cause: callback error, rejected promise, throw, timeout', async () => {
    const refused = new Error('ECONNREFUSED')
    const cases = [
      fakeStore((_method, callback) => callback(refused)),
      fakeStore(() => Promise.reject(refused)),
      fakeStore(() => {
        throw refused
      }),
    ]
    for (const store of cases) {
      const error = await fromConnectStore(store)
        .get(newKey(), T)
        .then(
          () => undefined,
          (caught: unknown) => caught,
        )
      assert.ok(error instanceof StoreError)
      assert.equal(error.cause, refused)
    }
    const silent = fromConnectStore(
      fakeStore(() => undefined),
      { timeout: 20 },
    )
    await assert.rejects(silent.get(newKey(), T), StoreError)
  })

  it('reads an ENOENT error as a miss (the file stores convention), and ignores foreign sessions', async () => {
    const missing = Object.assign(new Error('no such file'), { code: 'ENOENT' })
    assert.equal(
      await fromConnectStore(fakeStore((_m, callback) => callback(missing))).get(newKey(), T),
      undefined,
    )
    const expressSessionRecord = { cookie: { originalMaxAge: 1000 }, userId: 'someone' }
    const foreign = fromConnectStore(fakeStore((_m, callback) => callback(null, expressSessionRecord)))
    assert.equal(await foreign.get(newKey(), T), undefined)
  })

  it('close() leaves the express-session store open; the bridge then refuses calls', async () => {
    const memory = new MemoryStore({ checkPeriod: 0 })
    const bridge = fromConnectStore(memory)
    await bridge.close()
    await bridge.close()
    await assert.rejects(bridge.get(newKey(), T), StoreError)
    await new Promise<void>((resolve) => memory.set('still-open', { cookie: {} } as never, () => resolve()))
  })

  it('documents its limit: two processes over one store can both win a compare-and-set', async () => {
    const shared = new MemoryStore({ checkPeriod: 0 })
    const [first, second] = [fromConnectStore(shared), fromConnectStore(shared)] // as if in two processes
    const key = newKey()
    await first.create(key, record(), T)
    const results = await Promise.all([
      first.update(key, { ...record('{"writer":1}'), version: 2 }, 1, T),
      second.update(key, { ...record('{"writer":2}'), version: 2 }, 1, T),
    ])
    assert.deepEqual(results, [true, true], 'the callback API has no atomic compare-and-set')
    // Within one process the per-key lock makes it exact (the contract's 20 concurrent writers prove it).
  })

  it('serves a session manager end to end: login, "your devices", log out everywhere', async () => {
    const sessions = createSessionManager({
      store: fromConnectStore(new MemoryStore({ checkPeriod: 0 }), { ephemeral: true }),
      secrets: [SECRET_A],
    })
    const laptop = await request(sessions, undefined, (s) => s.login('ada'))
    const phone = await request(sessions, undefined, (s) => s.login('ada'))
    const { session: current } = await request(sessions, laptop.cookie, (s) => s.set('seen', true))
    const devices = await sessions.listSessions('ada', { current })
    assert.equal(devices.length, 2)
    assert.equal(devices.filter((device) => device.current).length, 1)
    assert.equal(await sessions.revokeSessions('ada', { except: current }), 1)
    assert.equal((await request(sessions, phone.cookie)).session.userId, undefined)
    assert.equal((await request(sessions, laptop.cookie)).session.userId, 'ada')
  })
})

describe('fromConnectStore(connect-redis)', { skip }, () => {
  it("writes a native Redis TTL from the session's remaining time", async () => {
    const prefix = `${runPrefix}${randomUUID()}:`
    const bridge = fromConnectStore(new ConnectRedisStore({ client, prefix }))
    const key = newKey()
    await bridge.create(key, record('{}', undefined, T + 90_000), T)
    const ttl = await client!.ttl(`${prefix}${key}`)
    assert.ok(ttl > 85 && ttl <= 90, `TTL ${ttl}s`)
  })
})

// examples/migrate-from-express-session.ts imports tessera/connect, which resolves once package.json#exports
// lists "./connect" and the package is built (npm test builds first).
const exampleSkip = await import('tessera/connect' as string).then(
  () => undefined,
  (error: { code?: string }) =>
    `tessera/connect does not resolve (${error.code}): add "./connect" to package.json#exports and build`,
)
if (exampleSkip !== undefined && process.env.CI !== 'true')
  console.warn(`# migration example skipped: ${exampleSkip}`)

describe('examples/migrate-from-express-session.ts', {
  skip: process.env.CI === 'true' ? undefined : exampleSkip,
}, () => {
  const file = fileURLToPath(new URL('../../examples/migrate-from-express-session.ts', import.meta.url))

  it('compiles', async () => {
    const { default: ts } = await import('typescript')
    const config = ts.getParsedCommandLineOfConfigFile(
      fileURLToPath(new URL('../../tsconfig.examples.json', import.meta.url)),
      {},
      { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined },
    )!
    const program = ts.createProgram([file], config.options)
    const problems = ts.getPreEmitDiagnostics(program, program.getSourceFile(file))
    assert.deepEqual(
      problems.map((problem) => ts.flattenDiagnosticMessageText(problem.messageText, '\n')),
      [],
    )
  })

  it('runs: a user logged in under express-session is still logged in after the switch', async () => {
    process.env.SESSION_SECRET ??= SECRET_A
    const example = (await import(pathToFileURL(file).href)) as {
      before(): { listen(port: number, host: string): Server }
      after(): { listen(port: number, host: string): Server }
    }
    const [old, next] = await Promise.all([serve(example.before()), serve(example.after())])
    try {
      const login = await fetch(`${old.origin}/login`, { method: 'POST', redirect: 'manual' })
      const legacy = login.headers.getSetCookie()[0]!.split(';')[0]!
      assert.match(legacy, /^connect\.sid=s%3A/)
      assert.equal(await (await fetch(`${old.origin}/me`, { headers: { cookie: legacy } })).text(), 'ada')

      const moved = await fetch(`${next.origin}/me`, { headers: { cookie: legacy } })
      assert.equal(await moved.text(), 'ada')
      const cookies = moved.headers.getSetCookie()
      assert.ok(
        cookies.some((cookie) => /^connect\.sid=;/.test(cookie)),
        'the old cookie is cleared',
      )
      const current = cookies.find((cookie) => cookie.startsWith('__Host-sid='))!.split(';')[0]!
      assert.equal(await (await fetch(`${next.origin}/me`, { headers: { cookie: current } })).text(), 'ada')
      assert.equal(
        await (await fetch(`${old.origin}/me`, { headers: { cookie: legacy } })).text(),
        'anonymous',
      )
      assert.equal(await (await fetch(`${next.origin}/me`)).text(), 'anonymous')
    } finally {
      await Promise.all([old.close(), next.close()])
    }
  })
})

async function serve(app: { listen(port: number, host: string): Server }) {
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
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
