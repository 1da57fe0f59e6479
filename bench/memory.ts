/**
 * Bytes per session in an in-process store, in a fresh child with --expose-gc
 * (`node --expose-gc --import tsx bench/memory.ts '{"library":"tessera","count":100000,"payload":"100B"}'`).
 *
 * Each library's store is filled through its own store API with what that library itself would write for a
 * session holding the same data: tessera a hashed key and its JSON record (with its metadata: version, expiry,
 * creation and absolute deadline), express-session a uid-safe ID and the session with its cookie object.
 * Result: (heapUsed after a full GC with the sessions) − (heapUsed after a full GC before), / count.
 */
import { IDLE_MS } from './common.js'
import { requireAsExpressSession, requirePackage } from './require.js'

export type MemoryLibrary = 'tessera' | 'express-session' | 'memorystore'
export type MemoryPayload = 'one-key' | '100B'

export interface MemoryResult {
  readonly library: MemoryLibrary
  readonly payload: MemoryPayload
  readonly count: number
  /** Size of the user data as JSON, in bytes. */
  readonly dataBytes: number
  readonly bytesPerSession: number
  readonly heapBefore: number
  readonly heapAfter: number
  readonly rssDelta: number
}

const { library, count, payload } = JSON.parse(process.argv[2] ?? '{}') as {
  library: MemoryLibrary
  count: number
  payload: MemoryPayload
}

// { counter } alone, or about 100 bytes of JSON: a user, roles, a preference and a short note.
function dataFor(i: number): Record<string, unknown> {
  if (payload === 'one-key') return { counter: i }
  return {
    counter: i,
    userId: `user-${String(i).padStart(8, '0')}`,
    roles: ['reader', 'editor'],
    theme: 'dark',
    note: 'the quick brown fox',
  }
}

function collect(): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc')
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
}

type Callback = (error?: unknown) => void
interface SessionStore {
  set(sid: string, session: object, callback: Callback): void
  length?(callback: (error: unknown, length: number) => void): void
}
interface ExpressSessionModule {
  (options: object): unknown
  readonly MemoryStore: new () => SessionStore
  readonly Cookie: new (options: object) => object
}

async function fill(): Promise<{ keep: unknown; written: number }> {
  const now = Date.now()
  if (library === 'tessera') {
    const { MemoryStore } = await import('../src/stores/memory.js')
    const { generateSessionId } = await import('../src/index.js')
    const { sha256Hex } = await import('../src/internal/crypto.js')
    const { serializePayload } = await import('../src/payload.js')
    const store = new MemoryStore({ maxSessions: count * 2 })
    const meta = { createdAt: now, absoluteExpiresAt: now + 12 * 3_600_000 }
    for (let i = 0; i < count; i++) {
      const key = sha256Hex(generateSessionId())
      // As the manager writes it: with the check of the key the record is stored under.
      const record = { data: serializePayload(meta, dataFor(i), key), expiresAt: now + IDLE_MS, version: 1 }
      await store.create(key, record, now)
    }
    if (store.size !== count) throw new Error(`tessera kept ${store.size} of ${count}`)
    await store.close()
    return { keep: store, written: store.size }
  }
  const session = requirePackage<ExpressSessionModule>('express-session')
  const uid = requireAsExpressSession<{ sync(bytes: number): string }>('uid-safe')
  if (uid === undefined) throw new Error('uid-safe is not resolvable from express-session')
  let store: SessionStore
  if (library === 'express-session') store = new session.MemoryStore()
  else {
    const createStore =
      requirePackage<(s: ExpressSessionModule) => new (options: object) => SessionStore>('memorystore')
    store = new (createStore(session))({ checkPeriod: 60_000 })
  }
  for (let i = 0; i < count; i++) {
    const cookie = new session.Cookie({
      maxAge: IDLE_MS,
      secure: false,
      httpOnly: true,
      sameSite: 'lax',
      path: '/',
    })
    const sess = { cookie, ...dataFor(i) }
    await new Promise<void>((resolve, reject) =>
      store.set(uid.module.sync(24), sess, (error) => (error ? reject(error) : resolve())),
    )
  }
  const written = await new Promise<number>((resolve, reject) => {
    if (store.length === undefined) resolve(count)
    else store.length((error, length) => (error ? reject(error) : resolve(length)))
  })
  ;(store as { stopInterval?: () => void }).stopInterval?.()
  return { keep: store, written }
}

/** Holds the filled store until the end, so the second measurement cannot miss it. */
let retained: unknown

async function main(): Promise<void> {
  // Load every module first, so their code is in the baseline rather than counted as session memory.
  await import('../src/stores/memory.js')
  await import('../src/index.js')
  requirePackage('express-session')
  requirePackage('memorystore')
  const rssBefore = process.memoryUsage().rss
  const heapBefore = collect()
  const { keep, written } = await fill()
  retained = keep
  if (written !== count) throw new Error(`${library} holds ${written} sessions, expected ${count}`)
  const heapAfter = collect()
  const result: MemoryResult = {
    library,
    payload,
    count,
    dataBytes: JSON.stringify(dataFor(count - 1)).length,
    bytesPerSession: (heapAfter - heapBefore) / count,
    heapBefore,
    heapAfter,
    rssDelta: process.memoryUsage().rss - rssBefore,
  }
  if (retained === undefined) throw new Error('the store was not kept')
  if (process.send !== undefined) process.send({ type: 'memory-result', result })
  else console.log(JSON.stringify(result, null, 2))
}

main().then(
  () => setImmediate(() => process.exit(0)),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  },
)
