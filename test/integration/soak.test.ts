// Soak: a node:http app on a MemoryStore capped at 5,000 sessions (fixtures/soak-app.ts, its own process)
// under a closed-loop load of 20 keep-alive connections over 50,000 distinct sessions: each request picks one
// of 50,000 slots at random and sends its cookie, or none while the slot is empty (a new session, whose cookie
// then fills the slot). Measured: the heap (sampled every second, and after a full GC every 2 s) stays within
// a bound, the store evicts (and counts it) instead of growing, every request is answered 200, and afterwards
// the process holds the same active resources (timers, sockets, handles) and listeners as before the load.
//
// TESSERA_SOAK_SECONDS=300 (npm run soak) runs the 5 minutes; the suite runs 20 s.
import assert from 'node:assert/strict'
import { after, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type AppProcess, runLoad, send, startApp } from './fixtures/harness.js'

const SECONDS = Number(process.env.TESSERA_SOAK_SECONDS ?? 20)
const DISTINCT = 50_000
const MAX_SESSIONS = 5_000
const CONNECTIONS = 20
const MB = 1024 * 1024
/**
 * The heap after a full GC may exceed the one before the load by at most this. The store holds at most
 * 5,000 sessions; docs/benchmarks.md measures ~490 bytes per MemoryStore session with ~100 B of data, and
 * these carry ~150 B (one counter and the manager's metadata), so 1 KiB each is twice the need: 5 MiB. Plus
 * 8 MiB for what the first requests load once (compiled code, inline caches, the HTTP parser pool of 20
 * connections), which is no leak but is not in the baseline either.
 */
const HEAP_BOUND = MAX_SESSIONS * 1024 + 8 * MB
/** Retained heap may not creep upwards once the store is full: last GC sample vs first one after it filled. */
const GROWTH_BOUND = 2 * MB

let app: AppProcess | undefined
after(() => app?.stop())

interface Stats {
  heapUsed: number
  size: number
  evictions: number
  resources: string[]
  timers: number
  connections: number
  listeners: Record<string, number>
}

async function stats(origin: string, gc = false): Promise<Stats> {
  const reply = await send(origin, { method: 'GET', path: gc ? '/stats?gc=1' : '/stats' })
  assert.equal(reply.status, 200, reply.error)
  return JSON.parse(reply.body) as Stats
}

/** `['Timeout', 'TCPServerWrap', 'Timeout']` → `{ TCPServerWrap: 1, Timeout: 2 }`. */
function tally(resources: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const name of [...resources].sort()) counts[name] = (counts[name] ?? 0) + 1
  return counts
}

const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`

it(`keeps the heap bounded, evicts and counts it, and leaks no timer or listener over ${SECONDS} s of load on ${DISTINCT.toLocaleString('en')} distinct sessions (MemoryStore, maxSessions ${MAX_SESSIONS.toLocaleString('en')})`, {
  timeout: (SECONDS + 60) * 1000,
}, async (t) => {
  app = await startApp('test/integration/fixtures/soak-app.ts', [String(MAX_SESSIONS)], {
    nodeArgs: ['--expose-gc'],
  })
  const { origin } = app
  const before = await stats(origin, true)

  const slots: (string | undefined)[] = new Array(DISTINCT).fill(undefined)
  const counts = { requests: 0, created: 0, evictedSeen: 0, failed: 0, replacedLive: 0 }
  const failures: string[] = []
  const load = runLoad({
    origin,
    connections: CONNECTIONS,
    durationMs: SECONDS * 1000,
    next() {
      const slot = Math.floor(Math.random() * DISTINCT)
      return { method: 'POST', path: '/hit', cookie: slots[slot], slot }
    },
    onReply(call, reply) {
      counts.requests++
      if (reply.status !== 200) {
        counts.failed++
        if (failures.length < 5) failures.push(`${reply.status} ${reply.error ?? reply.body}`)
        return
      }
      const { isNew } = JSON.parse(reply.body) as { isNew: boolean; visits: number }
      const issued = reply.setCookie[0]
      if (call.cookie === undefined) counts.created++
      else if (isNew)
        counts.evictedSeen++ // its session was evicted: the app started a new one
      else if (issued !== undefined && issued !== call.cookie) counts.replacedLive++
      if (issued !== undefined && (isNew || call.cookie === undefined)) slots[call.slot] = issued
    },
  })

  const heap: number[] = []
  const retained: { at: number; bytes: number; full: boolean }[] = []
  let loading = true
  const sampler = (async () => {
    const started = performance.now()
    for (let second = 1; loading; second++) {
      await sleep(Math.max(0, started + second * 1000 - performance.now()))
      if (!loading) break
      const gc = second % 2 === 0
      const sample = await stats(origin, gc)
      heap.push(sample.heapUsed)
      if (gc) retained.push({ at: second, bytes: sample.heapUsed, full: sample.size >= MAX_SESSIONS })
    }
  })()
  await load
  loading = false
  await sampler

  // Once the load's connections are closed, the app holds what it held before it: poll while they close.
  let end = await stats(origin, true)
  const deadline = performance.now() + 10_000
  const settled = (now: Stats) =>
    JSON.stringify(tally(now.resources)) === JSON.stringify(tally(before.resources)) &&
    now.timers === before.timers
  while (!settled(end) && performance.now() < deadline) {
    await sleep(100)
    end = await stats(origin, true)
  }

  const full = retained.filter((sample) => sample.full)
  const distinct = counts.created + counts.evictedSeen
  t.diagnostic(
    `${counts.requests.toLocaleString('en')} requests in ${SECONDS} s (${Math.round(counts.requests / SECONDS)}/s): ${counts.created.toLocaleString('en')} sessions created for empty slots, ${counts.evictedSeen.toLocaleString('en')} re-created after eviction (${distinct.toLocaleString('en')} distinct), ${counts.failed} failed`,
  )
  t.diagnostic(
    `store: ${end.size.toLocaleString('en')} sessions held, ${end.evictions.toLocaleString('en')} evictions`,
  )
  t.diagnostic(
    `heap: ${mb(before.heapUsed)} before (after GC); sampled ${mb(Math.min(...heap))}-${mb(Math.max(...heap))}; after GC ${mb(Math.min(...retained.map((s) => s.bytes)))}-${mb(Math.max(...retained.map((s) => s.bytes)))}, ${mb(end.heapUsed)} at the end; bound ${mb(before.heapUsed + HEAP_BOUND)}`,
  )
  const fullBytes = full.map((s) => s.bytes)
  t.diagnostic(
    `retained heap once the store was full, ${full.length} samples: ${mb(fullBytes[0] ?? 0)} first, ${mb(fullBytes.at(-1) ?? 0)} last, ${mb(Math.min(...fullBytes))}-${mb(Math.max(...fullBytes))}`,
  )
  t.diagnostic(`resources before ${JSON.stringify(tally(before.resources))}`)
  t.diagnostic(`resources after  ${JSON.stringify(tally(end.resources))}`)
  t.diagnostic(`live timers (ref'd or not) before ${before.timers}, after ${end.timers}`)
  t.diagnostic(`listeners before ${JSON.stringify(before.listeners)}, after ${JSON.stringify(end.listeners)}`)

  assert.deepEqual(failures, [], 'every request answered 200')
  assert.equal(counts.replacedLive, 0, 'a live session was never replaced')
  assert.ok(distinct > MAX_SESSIONS * 2, `far more distinct sessions (${distinct}) than the store holds`)
  assert.ok(end.evictions > 0, 'the store evicted to stay within maxSessions')
  // Nothing expires within the idle timeout (30 min) and nothing is destroyed: every session created and
  // no longer held was evicted, and counted.
  assert.equal(
    end.evictions,
    distinct - end.size,
    'every session created and no longer held was counted as evicted',
  )
  assert.ok(end.size <= MAX_SESSIONS, `the store holds at most ${MAX_SESSIONS} (${end.size})`)
  const maxRetained = Math.max(end.heapUsed, ...retained.map((s) => s.bytes))
  assert.ok(
    maxRetained - before.heapUsed <= HEAP_BOUND,
    `retained heap grew by ${mb(maxRetained - before.heapUsed)}, bound ${mb(HEAP_BOUND)}`,
  )
  assert.ok(full.length > 0, 'the store filled during the load')
  assert.ok(
    end.heapUsed - full[0]!.bytes <= GROWTH_BOUND,
    `no creep once full: ${mb(full[0]!.bytes)} when it filled, ${mb(end.heapUsed)} at the end`,
  )
  assert.deepEqual(tally(end.resources), tally(before.resources), 'the same active resources as before')
  assert.equal(end.timers, before.timers, 'the same live timers as before')
  assert.deepEqual(end.listeners, before.listeners, 'the same listeners as before')
  assert.equal(end.connections, 1, 'only the connection asking for these stats is open')
})
